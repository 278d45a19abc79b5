import { connect } from 'nats';

/** Connects once (no retries) and says how it went: `connected`, or the server's refusal code. */
export async function refusedConnect(options: Parameters<typeof connect>[0]): Promise<string> {
  try {
    const nc = await connect({ ...options, reconnect: false, timeout: 3000 });
    await nc.close();
    return 'connected';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  }
}
