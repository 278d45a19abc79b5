/**
 * Exit codes of `ferry`, each error saying what to do next:
 * 0 done · 1 the operation ran and failed (a migration rolled back, a plan refused or failed) ·
 * 2 bad usage or input · 3 the API cannot be reached or refused the token (401, or 403: its role is too small) · 4 no such object ·
 * 5 the cluster refused the request as it stands (conflict, admission control, a migration in progress).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, notFound: 4, refused: 5 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}
