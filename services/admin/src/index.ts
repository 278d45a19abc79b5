export { initControlPlane, InitOptions, ControlFile, type InitResult } from './init.ts';
export { controlApi, createJoinToken, listJoinTokens, parseDuration, revokeJoinToken } from './join-token.ts';
