/** Authenticated Origin Pulls routes: zone-level certificates and setting, hostname certificates and associations. */
import type { Static } from '@sinclair/typebox';
import type { AssociationInput } from '../../domain/aop.js';
import type { AopCertificateKind } from '../../domain/model.js';
import type { DomainConfig } from '../../domain/config.js';
import { resultInfo, singlePage } from '../envelope.js';
import { aopCertificate, association, associationDetail } from '../presenters.js';
import { pageRequest, statusFilter } from '../query.js';
import { HostnamesPutBody, UploadBody, ZoneSettingBody } from '../schemas.js';
import type { ApiServices, CertplaneServer } from '../server.js';

const READ = 'ssl:read' as const;
const WRITE = 'ssl:write' as const;

export function registerAopRoutes(app: CertplaneServer, services: ApiServices, config: DomainConfig): void {
  const { aop } = services;

  const certificateRoutes = (base: string, kind: AopCertificateKind) => {
    app.defineRoute({
      method: 'GET',
      cacheable: true,
      url: base,
      family: 'aop',
      permission: READ,
      handler: async ({ zone }) => {
        const certs = await aop.listCertificates(zone, kind);
        const items = certs.map(aopCertificate);
        // Observed: an empty zone-level list is `result: null`.
        if (kind === 'zone' && items.length === 0 && config.fidelity.emptyZoneCertificateListIsNull) {
          return { result: null, resultInfo: singlePage(0) };
        }
        return { result: items, resultInfo: singlePage(items.length) };
      },
    });
    app.defineRoute<Static<typeof UploadBody>>({
      method: 'POST',
      url: base,
      family: 'aop',
      permission: WRITE,
      body: UploadBody,
      handler: async ({ zone, body }) => ({ result: aopCertificate(await aop.uploadCertificate(zone, kind, body)) }),
    });
    app.defineRoute({
      method: 'GET',
      cacheable: true,
      url: `${base}/:certificate_id`,
      family: 'aop',
      permission: READ,
      handler: async ({ zone, params }) => ({
        result: aopCertificate(await aop.getCertificate(zone, kind, params.certificate_id)),
      }),
    });
    app.defineRoute({
      method: 'DELETE',
      url: `${base}/:certificate_id`,
      family: 'aop',
      permission: WRITE,
      handler: async ({ zone, params }) => ({
        result: aopCertificate(await aop.deleteCertificate(zone, kind, params.certificate_id)),
      }),
    });
  };

  certificateRoutes('/zones/:zone_id/origin_tls_client_auth', 'zone');
  certificateRoutes('/zones/:zone_id/origin_tls_client_auth/hostnames/certificates', 'hostname');

  app.defineRoute({
    method: 'GET',
    cacheable: true,
    url: '/zones/:zone_id/origin_tls_client_auth/settings',
    family: 'aop',
    permission: READ,
    handler: async ({ zone }) => ({ result: await aop.getZoneSetting(zone) }),
  });
  app.defineRoute<Static<typeof ZoneSettingBody>>({
    method: 'PUT',
    url: '/zones/:zone_id/origin_tls_client_auth/settings',
    family: 'aop',
    permission: WRITE,
    body: ZoneSettingBody,
    handler: async ({ zone, body }) => ({ result: await aop.setZoneSetting(zone, body.enabled) }),
  });

  app.defineRoute<Static<typeof HostnamesPutBody>>({
    method: 'PUT',
    url: '/zones/:zone_id/origin_tls_client_auth/hostnames',
    family: 'aop',
    permission: WRITE,
    body: HostnamesPutBody,
    handler: async ({ zone, body }) => {
      const views = await aop.putAssociations(zone, body.config as AssociationInput[]);
      return { result: views.map((v) => associationDetail(v, true)) };
    },
  });
  app.defineRoute({
    method: 'GET',
    cacheable: true,
    url: '/zones/:zone_id/origin_tls_client_auth/hostnames',
    family: 'aop',
    permission: READ,
    handler: async ({ zone, query }) => {
      const page = pageRequest(query, 'aop', { perPage: 50, maxPerPage: 1000 });
      const statuses = statusFilter(query, 'aop');
      const { items, totalCount } = await aop.listAssociations(zone, statuses, page);
      return {
        result: items.map(association),
        resultInfo: resultInfo(page.page, page.perPage, items.length, totalCount),
      };
    },
  });
  app.defineRoute({
    method: 'GET',
    cacheable: true,
    url: '/zones/:zone_id/origin_tls_client_auth/hostnames/:hostname',
    family: 'aop',
    permission: READ,
    handler: async ({ zone, params }) => ({
      result: associationDetail(await aop.getAssociation(zone, params.hostname)),
    }),
  });
}
