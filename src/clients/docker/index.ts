export * from './client.js';
export * from './stream.js';
export type * from './types.js';
