export { startApi, buildApp, type ApiServer } from './server.ts';
export { ApiConfig, loadApiConfig } from './config.ts';
