package ch.ungleich.uncloud.hook.model;

/** How a NIC is filtered. */
public enum Mode {
  /** Own MAC, own listed addresses, own link-local; the full rule set. */
  FILTER,
  /** Own MAC only (for ARP too); any IP; still no RA, redirects, DHCP server answers, other ethertypes. */
  MAC_ONLY,
  /** Not filtered at all: a trusted NIC (router VM) or {@code unlisted = allow}. */
  OPEN
}
