import type { AllowlistEntry } from '../../shared/allowlist/rows';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';

/** A store that only records what an allowlist import writes (every entry new). */
export function recordingStore(): { store: ProvisioningStore; written: AllowlistEntry[] } {
  const written: AllowlistEntry[] = [];
  const store = {
    importAllowlistEntries: async (entries: AllowlistEntry[]) => {
      written.push(...entries);
      return { imported: entries.length, updated: 0, unchanged: 0 };
    },
  } as unknown as ProvisioningStore;
  return { store, written };
}
