/**
 * Registering a CA certificate as AWS requires it (RegisterCACertificate, certificateMode DEFAULT): the
 * account's registration code (GetRegistrationCode), and a verification certificate with that code as its
 * Common Name, signed by the CA's private key — the proof that the caller holds the key.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/register-CA-cert.html
 */
import { GetRegistrationCodeCommand, type IoTClient } from '@aws-sdk/client-iot';
import { type CertificateAuthority, generateKeyPair, issueCertificate } from './pki';

/** `caCertificate` and `verificationCertificate` for RegisterCACertificate (DEFAULT mode). */
export async function verifiedCaCertificate(
  iot: IoTClient,
  ca: CertificateAuthority,
): Promise<{ caCertificate: string; verificationCertificate: string }> {
  const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
  if (!registrationCode) throw new Error('GetRegistrationCode returned no code');
  const verification = await issueCertificate(ca, {
    publicKey: (await generateKeyPair()).publicKey,
    subject: { commonName: registrationCode },
    validityDays: 1,
  });
  return { caCertificate: ca.certificatePem, verificationCertificate: verification.certificatePem };
}
