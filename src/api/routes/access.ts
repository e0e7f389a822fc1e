/** Access mTLS routes, each under both /accounts/:account_id and /zones/:zone_id. */
import type { Static } from '@sinclair/typebox';
import { resultInfo, singlePage } from '../envelope.js';
import { accessCertificate, accessSetting } from '../presenters.js';
import { pageRequest } from '../query.js';
import { AccessCreateBody, AccessSettingsBody, AccessUpdateBody } from '../schemas.js';
import type { ApiServices, CertplaneServer } from '../server.js';

const READ = 'access-certificate:read' as const;
const WRITE = 'access-certificate:write' as const;

export function registerAccessRoutes(app: CertplaneServer, services: ApiServices): void {
  const { access } = services;
  for (const owner of ['/accounts/:account_id', '/zones/:zone_id']) {
    const base = `${owner}/access/certificates`;
    app.defineRoute({
      method: 'GET',
      url: base,
      family: 'access',
      permission: READ,
      handler: async ({ scope, query }) => {
        const page = pageRequest(query, 'access', { perPage: 50, maxPerPage: 1000 });
        const { items, totalCount } = await access.listCertificates(scope, page);
        return {
          result: items.map(accessCertificate),
          resultInfo: resultInfo(page.page, page.perPage, items.length, totalCount),
        };
      },
    });
    app.defineRoute<Static<typeof AccessCreateBody>>({
      method: 'POST',
      url: base,
      family: 'access',
      permission: WRITE,
      body: AccessCreateBody,
      status: 201,
      handler: async ({ scope, body }) => ({
        result: accessCertificate(await access.createCertificate(scope, body)),
      }),
    });
    app.defineRoute({
      method: 'GET',
      url: `${base}/settings`,
      family: 'access',
      permission: READ,
      handler: async ({ scope }) => {
        const items = (await access.listSettings(scope)).map(accessSetting);
        return { result: items, resultInfo: singlePage(items.length) };
      },
    });
    app.defineRoute<Static<typeof AccessSettingsBody>>({
      method: 'PUT',
      url: `${base}/settings`,
      family: 'access',
      permission: WRITE,
      body: AccessSettingsBody,
      status: 202,
      handler: async ({ scope, body }) => {
        const items = (await access.putSettings(scope, body.settings)).map(accessSetting);
        return { result: items, resultInfo: singlePage(items.length) };
      },
    });
    app.defineRoute({
      method: 'GET',
      url: `${base}/:certificate_id`,
      family: 'access',
      permission: READ,
      handler: async ({ scope, params }) => ({
        result: accessCertificate(await access.getCertificate(scope, params.certificate_id)),
      }),
    });
    app.defineRoute<Static<typeof AccessUpdateBody>>({
      method: 'PUT',
      url: `${base}/:certificate_id`,
      family: 'access',
      permission: WRITE,
      body: AccessUpdateBody,
      handler: async ({ scope, params, body }) => ({
        result: accessCertificate(await access.updateCertificate(scope, params.certificate_id, body)),
      }),
    });
    app.defineRoute({
      method: 'DELETE',
      url: `${base}/:certificate_id`,
      family: 'access',
      permission: WRITE,
      handler: async ({ scope, params }) => ({ result: await access.deleteCertificate(scope, params.certificate_id) }),
    });
  }
}
