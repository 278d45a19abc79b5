/** Redis keys shared by the scheduler (writer) and the API (reader). */
export const redisKeys = (prefix = 'ferry') => ({
  /** hash: host id -> HostRecord JSON */
  hosts: `${prefix}:hosts`,
  /** hash: counter name -> count (capacity reports accepted / rejected by reason) */
  capacityStats: `${prefix}:stats:capacity`,
});
