import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import type { SamlConnection } from '../../connections/connections.js';
import type { SamlUrls } from '../../connections/urls.js';

/** Roster's own key pair as a SAML service provider (SAML_SP_KEY_FILE, SAML_SP_CERT_FILE). */
export interface SpCredentials {
  privateKey: string;
  certificate: string;
}

export class SpCredentialsError extends Error {}

/** Reads and checks the SP key pair at start, so a bad file stops the start, not a sign-in. */
export function loadSpCredentials(keyFile: string, certFile: string): SpCredentials {
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new SpCredentialsError(`${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const privateKey = read(keyFile, 'SAML_SP_KEY_FILE');
  const certificate = read(certFile, 'SAML_SP_CERT_FILE');
  let key;
  let cert;
  try {
    key = createPrivateKey(privateKey);
  } catch {
    throw new SpCredentialsError(`SAML_SP_KEY_FILE: ${keyFile} is not a PEM private key`);
  }
  try {
    cert = new X509Certificate(certificate);
  } catch {
    throw new SpCredentialsError(`SAML_SP_CERT_FILE: ${certFile} is not a PEM certificate`);
  }
  if (!cert.checkPrivateKey(key))
    throw new SpCredentialsError('SAML_SP_CERT_FILE: the certificate is not the one of SAML_SP_KEY_FILE');
  return { privateKey, certificate };
}

/** The SP metadata an IdP admin uploads: entityID, ACS, and with SP credentials the signing and encryption certificate. */
export function spMetadata(c: SamlConnection, urls: SamlUrls, sp: SpCredentials | undefined): string {
  return generateServiceProviderMetadata({
    issuer: urls.entityId,
    callbackUrl: urls.acsUrl,
    identifierFormat: c.saml.nameIdFormat,
    wantAssertionsSigned: true,
    ...(sp
      ? {
          privateKey: sp.privateKey,
          publicCerts: sp.certificate,
          decryptionPvk: sp.privateKey,
          decryptionCert: sp.certificate,
          signatureAlgorithm: 'sha256' as const,
        }
      : {}),
  });
}
