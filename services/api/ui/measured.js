// A migration as the workload page shows it: what was predicted and what was measured, the same
// way the scheduler measures it for its predictions (measuredFrom in @ferry/core): the freeze the
// agents measured, the duration from the first phase's start to the end. Pure (unit-tested).

export function moveFigures(m) {
  const started = m.timeline?.length ? Math.min(...m.timeline.map((e) => e.startedAt)) : m.createdAt;
  const ended = m.finishedAt ?? null;
  return {
    predictedFreezeMs: m.predicted?.freezeMs ?? null,
    measuredFreezeMs: m.freeze?.agentMs ?? null,
    predictedSeconds: m.predicted?.seconds ?? null,
    measuredSeconds: ended === null ? null : Math.max(0, ended - started) / 1000,
    /** measured ÷ predicted freeze (how far off the prediction was), when both are there */
    freezeRatio: m.predicted?.freezeMs && m.freeze?.agentMs != null ? m.freeze.agentMs / m.predicted.freezeMs : null,
  };
}
