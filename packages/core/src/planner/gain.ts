/**
 * Below this a score difference is rounding, not gain: the running sums are floating point, so a
 * move that changes nothing (or undoes the last one) can show a gain of ~1e-16. A move must gain
 * more than this, whatever the minimum gain asked for, so the search never ping-pongs.
 */
export const GAIN_EPSILON = 1e-10;
