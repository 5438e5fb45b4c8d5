import { DOMParser } from '@xmldom/xmldom';
import { normalizeCertificate } from './certificates.js';

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const HTTP_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** What Roster takes from an IdP's metadata document. */
export interface IdpMetadata {
  entityId: string;
  ssoUrl: string;
  certificates: string[];
}

export class MetadataError extends Error {}

type El = {
  localName: string;
  namespaceURI: string | null;
  getAttribute(n: string): string | null;
  childNodes: ArrayLike<unknown>;
  textContent: string | null;
};

function children(el: El, ns: string, name: string): El[] {
  const out: El[] = [];
  for (let i = 0; i < el.childNodes.length; i++) {
    const c = el.childNodes[i] as El & { nodeType: number };
    if (c.nodeType === 1 && c.localName === name && c.namespaceURI === ns) out.push(c);
  }
  return out;
}

function descendants(el: El, ns: string, name: string): El[] {
  const out: El[] = [];
  const walk = (e: El) => {
    for (let i = 0; i < e.childNodes.length; i++) {
      const c = e.childNodes[i] as El & { nodeType: number };
      if (c.nodeType !== 1) continue;
      if (c.localName === name && c.namespaceURI === ns) out.push(c);
      walk(c);
    }
  };
  walk(el);
  return out;
}

function parse(xml: string): El {
  const fail = (msg: string) => {
    throw new MetadataError(`the metadata is not well-formed XML: ${msg.split('\n')[0]}`);
  };
  const doc = new DOMParser({
    errorHandler: { warning: () => undefined, error: fail, fatalError: fail },
  }).parseFromString(xml, 'text/xml');
  const root = doc?.documentElement as unknown as El | null;
  if (!root) throw new MetadataError('the metadata is empty');
  return root;
}

/**
 * Reads entityID, the HTTP-Redirect SSO endpoint and the signing certificates (several during
 * a rollover) from IdP metadata, as Okta and Entra publish it. An aggregate of several entities
 * is accepted when exactly one of them is an IdP.
 */
export function parseIdpMetadata(xml: string): IdpMetadata {
  const root = parse(xml);
  let entities: El[];
  if (root.namespaceURI === MD && root.localName === 'EntityDescriptor') entities = [root];
  else if (root.namespaceURI === MD && root.localName === 'EntitiesDescriptor')
    entities = descendants(root, MD, 'EntityDescriptor');
  else throw new MetadataError('the metadata must be a SAML 2.0 EntityDescriptor');
  const idps = entities.filter((e) => children(e, MD, 'IDPSSODescriptor').length > 0);
  if (idps.length !== 1)
    throw new MetadataError(
      idps.length
        ? 'the metadata describes several identity providers; paste the one to use'
        : 'the metadata has no IDPSSODescriptor',
    );
  const entity = idps[0]!;
  const entityId = entity.getAttribute('entityID');
  if (!entityId) throw new MetadataError('the EntityDescriptor has no entityID');
  const idp = children(entity, MD, 'IDPSSODescriptor')[0]!;
  const sso = children(idp, MD, 'SingleSignOnService')
    .find((s) => s.getAttribute('Binding') === HTTP_REDIRECT)
    ?.getAttribute('Location');
  if (!sso) throw new MetadataError('the IdP has no SingleSignOnService with the HTTP-Redirect binding');
  const certificates: string[] = [];
  for (const kd of children(idp, MD, 'KeyDescriptor')) {
    const use = kd.getAttribute('use');
    if (use && use !== 'signing') continue;
    for (const x of descendants(kd, DS, 'X509Certificate')) {
      const pem = normalizeCertificate(x.textContent ?? '');
      if (!pem) throw new MetadataError('a signing X509Certificate in the metadata is not a valid certificate');
      if (!certificates.includes(pem)) certificates.push(pem);
    }
  }
  if (!certificates.length) throw new MetadataError('the IdP metadata has no signing certificate');
  return { entityId, ssoUrl: sso, certificates };
}
