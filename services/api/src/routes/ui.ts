import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError, parseRequest } from '../errors.ts';
import { OPERATIONS, openApiDocument } from '../openapi.ts';

const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));
/** The dashboard's files, and nothing else from the disk. */
const JS = 'text/javascript; charset=utf-8';
const UI_FILES: Record<string, string> = {
  // the page's modules (app.js imports the others)
  'app.js': JS,
  'api.js': JS,
  'access.js': JS,
  'actions.js': JS,
  'drag.js': JS,
  'util.js': JS,
  'filters.js': JS,
  'pages.js': JS,
  'chart.js': JS,
  'measured.js': JS,
  'terminal.js': JS,
  'workload-tools.js': JS,
  'style.css': 'text/css; charset=utf-8',
};
const UiFileParams = z.strictObject({ file: z.string().max(64) });
const esc = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The API reference as one page: every operation with its parameters and bodies, from the same document. */
function docsPage(doc: Record<string, unknown>): string {
  const tags = [...new Set(OPERATIONS.map((op) => op.tag))];
  const paths = doc.paths as Record<
    string,
    Record<
      string,
      {
        parameters: Array<{ name: string; in: string; required: boolean; schema: unknown }>;
        requestBody?: { content: Record<string, { schema: unknown }> };
        responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
      }
    >
  >;
  const section = (tag: string) =>
    OPERATIONS.filter((op) => op.tag === tag)
      .map((op) => {
        const path = op.path.replace(/:([A-Za-z]+)/g, '{$1}');
        const spec = paths[path]![op.method.toLowerCase()]!;
        const params = spec.parameters.map((p) => `<li><code>${esc(p.name)}</code> (${p.in}${p.required ? ', required' : ''})</li>`).join('');
        const body = spec.requestBody ? `<details><summary>request body</summary><pre>${esc(JSON.stringify(Object.values(spec.requestBody.content)[0]!.schema, null, 2))}</pre></details>` : '';
        const [status, response] = Object.entries(spec.responses)[0]!;
        const schema = response.content ? Object.values(response.content)[0]!.schema : null;
        const answer = schema ? `<details><summary>${status} response</summary><pre>${esc(JSON.stringify(schema, null, 2))}</pre></details>` : '';
        return `<article><h3><code>${op.method} ${esc(path)}</code>${op.access === 'open' ? ' <small>(no token)</small>' : ` <small>(${op.access})</small>`}</h3><p>${esc(op.summary)}</p>${params ? `<ul>${params}</ul>` : ''}${body}${answer}</article>`;
      })
      .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ferry API</title><link rel="icon" href="data:,">
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#1d2430}h3{font-size:.95rem;margin:1.2rem 0 .2rem}pre{background:#f4f6f8;padding:.5rem;overflow:auto;font-size:12px}small{color:#6b7380}</style></head>
<body><h1>Ferry API ${esc(String((doc.info as { version: string }).version))}</h1><p>Every <code>/v1</code> route needs <code>Authorization: Bearer &lt;token&gt;</code> from a token whose role (viewer &lt; operator &lt; admin) is at least the one shown with the operation: 401 without a valid token, 403 when its role is too small. Errors are <code>{code, message, details}</code>. Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.0). <a href="/ui/">Dashboard</a>.</p>
${tags.map((tag) => `<h2>${esc(tag)}</h2>${section(tag)}`).join('')}</body></html>`;
}

/** The dashboard (static, open: it asks for the token itself), the OpenAPI document and its page. */
export function uiRoutes(app: FastifyInstance, version: string): void {
  const doc = openApiDocument(version);
  const docs = docsPage(doc);
  app.get('/', async (_request, reply) => reply.redirect('/ui/'));
  // a few KiB, read once: they change with the code, not while it runs
  const index = readFileSync(`${UI_DIR}index.html`, 'utf8');
  const files = new Map(Object.keys(UI_FILES).map((name) => [name, readFileSync(`${UI_DIR}${name}`, 'utf8')]));
  app.get('/ui/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(index));
  app.get('/ui/:file', async (request, reply) => {
    const { file } = parseRequest(UiFileParams, request.params, 'params');
    const body = files.get(file);
    if (body === undefined) throw new ApiError('NOT_FOUND', `no dashboard file ${file}`);
    return reply.type(UI_FILES[file]!).send(body);
  });
  app.get('/v1/openapi.json', async () => doc);
  app.get('/docs', async (_request, reply) => reply.type('text/html; charset=utf-8').send(docs));
}
