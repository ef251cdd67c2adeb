/** Keystone v3 service catalog: types and endpoint lookup. */
import { AgentError } from '../../common/errors.js';

export type EndpointInterface = 'internal' | 'public' | 'admin';

export interface CatalogEndpoint {
  interface: string;
  url: string;
  region?: string | null;
  region_id?: string | null;
  id?: string;
}

export interface CatalogService {
  type: string;
  name?: string;
  id?: string;
  endpoints: CatalogEndpoint[];
}

export interface EndpointQuery {
  /** Tried in order; default internal, then public. (`[glance] valid_interfaces` values; `internalURL` style is accepted.) */
  interfaces?: readonly string[] | undefined;
  /** Only endpoints of this region (matches region_id or region). */
  region?: string | undefined;
}

export class EndpointNotFoundError extends AgentError {}

export const DEFAULT_INTERFACES: readonly EndpointInterface[] = ['internal', 'public'];

/** The URL (no trailing slash) of `serviceType`, first matching interface wins. */
export function findEndpoint(catalog: readonly CatalogService[], serviceType: string, q: EndpointQuery = {}): string {
  const interfaces = (q.interfaces && q.interfaces.length > 0 ? q.interfaces : DEFAULT_INTERFACES).map((i) =>
    i.replace(/URL$/, ''),
  );
  const services = catalog.filter((s) => s.type === serviceType);
  for (const iface of interfaces) {
    for (const svc of services) {
      for (const ep of svc.endpoints) {
        if (ep.interface !== iface) continue;
        if (q.region !== undefined && ep.region_id !== q.region && ep.region !== q.region) continue;
        return ep.url.replace(/\/+$/, '');
      }
    }
  }
  const where = q.region === undefined ? '' : ` in region ${q.region}`;
  throw new EndpointNotFoundError(
    `no ${interfaces.join('/')} endpoint for service type ${serviceType}${where} in the keystone catalog`,
  );
}

/** Parses a catalog from a token body, tolerating missing pieces. */
export function parseCatalog(raw: unknown): CatalogService[] {
  if (!Array.isArray(raw)) return [];
  const out: CatalogService[] = [];
  for (const s of raw as unknown[]) {
    if (s === null || typeof s !== 'object') continue;
    const svc = s as Record<string, unknown>;
    if (typeof svc.type !== 'string' || !Array.isArray(svc.endpoints)) continue;
    const endpoints: CatalogEndpoint[] = [];
    for (const e of svc.endpoints as unknown[]) {
      if (e === null || typeof e !== 'object') continue;
      const ep = e as Record<string, unknown>;
      if (typeof ep.interface !== 'string' || typeof ep.url !== 'string') continue;
      endpoints.push({
        interface: ep.interface,
        url: ep.url,
        region: typeof ep.region === 'string' ? ep.region : null,
        region_id: typeof ep.region_id === 'string' ? ep.region_id : null,
      });
    }
    out.push({ type: svc.type, ...(typeof svc.name === 'string' ? { name: svc.name } : {}), endpoints });
  }
  return out;
}
