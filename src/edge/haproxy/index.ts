export { createHaproxyDataPlane, type HaproxyDataPlane, type HaproxyDataPlaneOptions, type HaproxyHealth, type HaproxyInfo } from './data-plane.js';
export { detectHaproxy, findHaproxy, MIN_VERSION, type HaproxyBinary } from './process.js';
export { sessionIsolationSelfTest, type IsolationReport } from './selftest.js';
