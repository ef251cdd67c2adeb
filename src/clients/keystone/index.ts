export * from './catalog.js';
export * from './client.js';
