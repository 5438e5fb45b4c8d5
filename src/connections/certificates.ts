import { X509Certificate } from 'node:crypto';

/** What an admin needs to recognise a certificate and its rollover date. */
export interface CertificateInfo {
  fingerprintSha256: string;
  subject: string;
  notAfter: string;
}

const PEM = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/;

/**
 * A certificate as PEM, from PEM or from the bare base64 that metadata's X509Certificate holds;
 * undefined when it is not a parseable X.509 certificate.
 */
export function normalizeCertificate(text: string): string | undefined {
  const body = (PEM.exec(text)?.[1] ?? text).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return undefined;
  const pem = `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
  try {
    new X509Certificate(pem);
  } catch {
    return undefined;
  }
  return pem;
}

export function certificateInfo(pem: string): CertificateInfo {
  const c = new X509Certificate(pem);
  return {
    fingerprintSha256: c.fingerprint256,
    subject: c.subject.replace(/\n/g, ', '),
    notAfter: new Date(c.validTo).toISOString(),
  };
}
