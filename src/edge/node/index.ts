export { createNodeDataPlane, type NodeDataPlaneOptions, type EdgeLogger } from './data-plane.js';
export { parseClientHelloSni, type ClientHelloResult, DEFAULT_MAX_CLIENT_HELLO } from './client-hello.js';
