import type { AgentError } from '@ferry/protocol';

/** A command failure with a stable code, sent back to the scheduler as is. */
export class CommandError extends Error {
  constructor(
    readonly code: AgentError['code'],
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CommandError';
  }

  toReply(): AgentError {
    return this.details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details: this.details };
  }
}
