package ch.ungleich.uncloud.hook.model;

import java.util.List;

/**
 * A NIC's stateful security group: what may reach it ({@code uc:ingress}) and what it may send
 * ({@code uc:egress}), beyond replies to connections allowed the other way (conntrack's established
 * and related, ICMP errors included).
 *
 * @param ingress whether inbound IP to the NIC's own addresses is filtered ({@code uc:ingress} present,
 *     or the host setting {@code ingress = deny})
 * @param in the inbound allows; empty with {@code ingress} = "only replies and what is always allowed"
 * @param egress whether outbound IP is filtered ({@code uc:egress} present)
 * @param out the outbound allows
 */
public record StatefulRules(boolean ingress, List<Allow> in, boolean egress, List<Allow> out) {
  /** Maximum {@code <uc:allow>} elements in one {@code uc:ingress} or {@code uc:egress}. */
  public static final int MAX_RULES = 64;

  /** No stateful filtering in either direction (no elements, trusted, unlisted NICs). */
  public static final StatefulRules NONE = new StatefulRules(false, List.of(), false, List.of());

  public boolean any() {
    return ingress || egress;
  }
}
