// What the current connection's driver can do, for views (issue 18): one helper instead of checks
// spread over the components. `reason` is the driver's words for why a method is not available
// (null when it is), `title` the sentence a disabled control carries as its tooltip and accessible
// description ("Not available on libvirt system (this computer): ...").
import { computed } from 'vue';
import type { ComputedRef } from 'vue';
import { unsupportedIn, useConnectionStore } from '../stores/connection.ts';
import type { CapabilityName } from '../stores/connection.ts';

export interface Capability {
  /** Why the first unsupported method of those asked for is not available; null when all are. */
  reason: ComputedRef<string | null>;
  /** The tooltip / accessible description of a control disabled for that reason; undefined when available. */
  title: ComputedRef<string | undefined>;
  supported: ComputedRef<boolean>;
}

/** A sentence for a control the connection cannot do. */
export function notAvailableText(label: string, reason: string): string {
  return `Not available on ${label}: ${reason}`;
}

/** The capability of one or more CoreApi methods (all needed) on the current connection; reactive. */
export function useCapability(...methods: CapabilityName[]): Capability {
  const conn = useConnectionStore();
  const reason = computed(() => {
    for (const m of methods) {
      const r = unsupportedIn(conn.capabilities, m);
      if (r) return r;
    }
    return null;
  });
  return {
    reason,
    title: computed(() => (reason.value ? notAvailableText(conn.label, reason.value) : undefined)),
    supported: computed(() => reason.value === null),
  };
}

/** A reactive lookup for lists of controls (one call per row): the title for a method, or undefined. */
export function useCapabilities(): (method: CapabilityName) => string | undefined {
  const conn = useConnectionStore();
  return (method) => {
    const r = unsupportedIn(conn.capabilities, method);
    return r ? notAvailableText(conn.label, r) : undefined;
  };
}
