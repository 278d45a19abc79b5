import { describe, expect, it } from 'vitest';
import { nftBatch } from './nft.ts';

describe('nft batch', () => {
  it('joins plain words and nft punctuation into lines', () => {
    expect(
      nftBatch([
        ['add', 'table', 'bridge', 't'],
        ['add', 'element', 'bridge', 't', 'm', '{', '"fv1"', ':', 'jump', 'c-x', '}'],
      ]),
    ).toBe('add table bridge t\nadd element bridge t m { "fv1" : jump c-x }\n');
  });

  it('refuses a word that could smuggle another command or a comment into the batch', () => {
    expect(() => nftBatch([['add', 'table', 'bridge', 't\nflush ruleset']])).toThrow(/refusing nft batch word/);
    expect(() => nftBatch([['add', 'table', 'bridge', 't; flush ruleset']])).toThrow(/refusing nft batch word/);
    expect(() => nftBatch([['add', 'rule', 'bridge', 't', 'c', 'iifname', '"a b"']])).toThrow(/refusing nft batch word/);
    expect(() => nftBatch([['add', 'table', 'bridge', 't', '#']])).toThrow(/refusing nft batch word/);
  });
});
