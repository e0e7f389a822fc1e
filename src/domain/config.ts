/** Behaviour settings of the domain: limits, lifecycle timing and fidelity toggles (all configurable). */
export interface Limits {
  /** Cloudflare: 10 hostname certificates per zone. */
  hostnameCertificatesPerZone: number;
  /** Cloudflare: 100 associations per certificate. */
  associationsPerCertificate: number;
  /** Cloudflare: 50 Access mTLS certificates per account. */
  accessCertificatesPerAccount: number;
  /** Zone-level AOP certificates kept per zone (not documented by Cloudflare; ours). */
  zoneCertificatesPerZone: number;
}

export interface LifecycleTiming {
  /** Until edges acknowledge deployments, a deployment completes this long after it started. */
  deployDelayMs: number;
  /** Until edges acknowledge deletions, a deletion completes this long after it started. */
  deleteDelayMs: number;
  /** A deployment still pending after this long becomes `deployment_timed_out`. */
  deployTimeoutMs: number;
  /** A deletion still pending after this long becomes `deletion_timed_out`. */
  deleteTimeoutMs: number;
  /** Deleted certificates and voided associations stay readable by id this long. */
  retentionMs: number;
}

export interface Fidelity {
  /** Cloudflare answers `result: null` (not `[]`) when a zone has no zone-level certificate. */
  emptyZoneCertificateListIsNull: boolean;
  /** Cloudflare answers 409 to an Access settings PUT while the previous one is still deploying. */
  accessSettingsConflict: boolean;
}

export interface DomainConfig {
  limits: Limits;
  lifecycle: LifecycleTiming;
  fidelity: Fidelity;
}

export const DEFAULT_DOMAIN_CONFIG: DomainConfig = {
  limits: {
    hostnameCertificatesPerZone: 10,
    associationsPerCertificate: 100,
    accessCertificatesPerAccount: 50,
    zoneCertificatesPerZone: 10,
  },
  lifecycle: {
    deployDelayMs: 2_000,
    deleteDelayMs: 2_000,
    deployTimeoutMs: 5 * 60_000,
    deleteTimeoutMs: 5 * 60_000,
    retentionMs: 7 * 24 * 3600_000,
  },
  fidelity: {
    emptyZoneCertificateListIsNull: true,
    accessSettingsConflict: true,
  },
};
