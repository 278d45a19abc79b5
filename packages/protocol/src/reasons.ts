/** Why the scheduler dropped a capacity report. Stable: used as counter labels. */
export const CAPACITY_REJECTIONS = ['OVERSIZED', 'NOT_JSON', 'SCHEMA', 'SUBJECT_MISMATCH', 'BAD_SUBJECT'] as const;
export type CapacityRejection = (typeof CAPACITY_REJECTIONS)[number];

/** Error codes of the HTTP API's `{code, message, details}` bodies. */
export const API_ERROR_CODES = ['UNAUTHORIZED', 'FORBIDDEN', 'BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'UNAVAILABLE', 'INTERNAL'] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];
