/**
 * Undo steps registered as the work that needs them is done, the way Incus' `revert` package
 * works: `add` right after each step that changed something, `fail()` on the way out of an error
 * (runs the undos in reverse order, newest first), `success()` once the whole thing stands (drops
 * them). A failing undo does not stop the ones after it, and never hides the error that caused the
 * revert: it goes to `onUndoError`.
 */
export class Reverter {
  private undos: { what: string; undo: () => unknown }[] = [];

  constructor(private readonly onUndoError: (what: string, err: unknown) => void = () => undefined) {}

  /** Registers the undo of a step just made; `what` names it in undo-error reports. */
  add(undo: () => unknown, what = 'undo'): void {
    this.undos.push({ what, undo });
  }

  /** Runs every registered undo, newest first, each once; the reverter is empty afterwards. */
  async fail(): Promise<void> {
    const undos = this.undos.reverse();
    this.undos = [];
    for (const { what, undo } of undos) {
      try {
        await undo();
      } catch (err) {
        this.onUndoError(what, err);
      }
    }
  }

  /** The work stands: nothing is undone, now or later. */
  success(): void {
    this.undos = [];
  }

  /**
   * Runs `work` with a fresh reverter: when it throws, what it registered is undone (then the
   * error goes on); when it returns, it is kept. `work` may call `success()` itself earlier, to
   * keep its steps while it goes on with work that has nothing to undo.
   */
  static async run<T>(work: (revert: Reverter) => Promise<T>, onUndoError?: (what: string, err: unknown) => void): Promise<T> {
    const revert = new Reverter(onUndoError);
    try {
      const result = await work(revert);
      revert.success();
      return result;
    } catch (err) {
      await revert.fail();
      throw err;
    }
  }
}
