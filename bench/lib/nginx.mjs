// nginx configurations for the edge benchmark (Debian's nginx package) and running them in the foreground from a
// temporary directory: `nginx -p <dir> -e <dir>/<name>-error.log -c <dir>/<name>.conf`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { spawnTracked, waitForPort } from './proc.mjs';

/** Lines every configuration shares: foreground, one worker, everything (pid, logs, temp files) in `dir`. */
function common(dir, name) {
  const temp = join(dir, `${name}-temp`);
  mkdirSync(temp, { recursive: true });
  // As root nginx would switch its worker to "nobody", which cannot read the 0700 temp directory: keep the user.
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};\n` : '';
  return `${user}daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
`;
}

function httpCommon(dir, name) {
  const temp = join(dir, `${name}-temp`);
  return `  access_log off;
  default_type text/plain;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
`;
}

/**
 * The origin: a tiny HTTPS server that REQUIRES a client certificate from the AOP CA (port `port`), and a probe
 * server (port `probePort`) that asks for one without requiring it and answers with the SHA-1 fingerprint of the
 * certificate presented (empty line when none), which the propagation benchmark uses to see which identity an edge
 * presents; and plain-HTTP stub_status on `statusPort` (connections accepted: shows whether edges reuse origin
 * connections).
 */
export function originConf(dir, { port, probePort, statusPort, files }) {
  return `${common(dir, 'origin')}http {
${httpCommon(dir, 'origin')}
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate ${files.originCert};
    ssl_certificate_key ${files.originKey};
    ssl_verify_client on;
    ssl_client_certificate ${files.aopCa};
    ssl_verify_depth 2;
    location / {
      add_header X-Origin-Client-Verify $ssl_client_verify always;
      add_header X-Origin-Tls $ssl_protocol always;
      return 200 "origin ok\\n";
    }
  }
  server {
    listen 127.0.0.1:${probePort} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate ${files.originCert};
    ssl_certificate_key ${files.originKey};
    ssl_verify_client optional_no_ca;
    location / {
      return 200 "$ssl_client_fingerprint\\n";
    }
  }
  server {
    listen 127.0.0.1:${statusPort};
    location / { stub_status; }
  }
}
`;
}

/**
 * nginx as the edge: TLS 1.3 to visitors, proxy_pass over TLS 1.3 to the origin presenting the AOP client
 * certificate, verifying the origin's certificate (as the certplane edge does when the hostname has an origin CA),
 * upstream keep-alive. Headers sent to the origin match what the certplane edge sends (Host, X-Forwarded-*).
 */
export function edgeConf(dir, { port, originPort, hostname, files }) {
  return `${common(dir, 'edge')}http {
${httpCommon(dir, 'edge')}
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${port} ssl default_server;
    server_name ${hostname};
    ssl_protocols TLSv1.3;
    ssl_certificate ${files.edgeCert};
    ssl_certificate_key ${files.edgeKey};
    location / {
      proxy_pass https://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate ${files.aopCert};
      proxy_ssl_certificate_key ${files.aopKey};
      proxy_ssl_server_name on;
      proxy_ssl_name origin.internal;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_trusted_certificate ${files.originCa};
      proxy_ssl_session_reuse on;
    }
  }
}
`;
}

/**
 * Starts nginx in the foreground with `conf` (written to <dir>/<name>.conf), optionally pinned to CPUs with
 * taskset, and waits until it listens on `port`. Returns the child (its pid is the master's).
 */
export async function startNginx(dir, name, conf, { port, cpus = null }) {
  const confFile = join(dir, `${name}.conf`);
  writeFileSync(confFile, conf);
  const args = ['-p', dir, '-e', join(dir, `${name}-error.log`), '-c', confFile];
  const child = cpus ? spawnTracked('taskset', ['-c', cpus, 'nginx', ...args], { stdio: 'ignore' }) : spawnTracked('nginx', args, { stdio: 'ignore' });
  try {
    await waitForPort(port, { child, timeoutMs: 10_000 });
  } catch (e) {
    const log = existsSync(join(dir, `${name}-error.log`)) ? readFileSync(join(dir, `${name}-error.log`), 'utf8') : '';
    throw new Error(`nginx (${name}) did not start: ${e.message}\n${log}`);
  }
  return child;
}
