/**
 * A device CA as an operator sets one up for JITR / JITP: registered in AWS IoT (ACTIVE,
 * auto-registration on) and recorded in fleetgate's store as a CA (`fleetgate certificates register
 * <ca.pem> --kind ca`). JITR fails closed: a CA that is only registered in IoT is not trusted.
 */
import {
  type IoTClient,
  RegisterCACertificateCommand,
  type RegisterCACertificateCommandInput,
} from '@aws-sdk/client-iot';
import { verifiedCaCertificate } from '../../local/ca-registration';
import type { CertificateAuthority } from '../../local/pki';
import { parseCertificatePem } from '../../shared/certificates';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { anchorCertificateRecord } from '../../shared/store/records';

/** Records `ca` in the store as a CA (what JITR trusts besides TRUSTED_CA_IDS). */
export async function recordTrustedCa(
  store: Pick<ProvisioningStore, 'putCertificateIfAbsent'>,
  ca: Pick<CertificateAuthority, 'certificatePem'>,
): Promise<string> {
  const record = anchorCertificateRecord(parseCertificatePem(ca.certificatePem), {
    kind: 'CA',
    now: new Date().toISOString(),
  });
  await store.putCertificateIfAbsent(record);
  return record.certificateId;
}

/**
 * Registers `ca` in IoT (ACTIVE, auto-registration on, plus `input`) as AWS requires it — with the
 * registration-code verification certificate in DEFAULT mode — and records it as trusted.
 */
export async function registerTrustedCa(
  iot: IoTClient,
  store: Pick<ProvisioningStore, 'putCertificateIfAbsent'>,
  ca: CertificateAuthority,
  input: Partial<RegisterCACertificateCommandInput> = {},
): Promise<string> {
  const certificateId = await registerCa(iot, ca, input);
  await recordTrustedCa(store, ca);
  return certificateId;
}

/** Registers `ca` in IoT only (ACTIVE, auto-registration on, plus `input`): JITR does not trust it yet. */
export async function registerCa(
  iot: IoTClient,
  ca: CertificateAuthority,
  input: Partial<RegisterCACertificateCommandInput> = {},
): Promise<string> {
  const proof =
    input.certificateMode === 'SNI_ONLY'
      ? { caCertificate: ca.certificatePem }
      : await verifiedCaCertificate(iot, ca);
  const out = await iot.send(
    new RegisterCACertificateCommand({
      ...proof,
      setAsActive: true,
      allowAutoRegistration: true,
      ...input,
    }),
  );
  return out.certificateId ?? '';
}
