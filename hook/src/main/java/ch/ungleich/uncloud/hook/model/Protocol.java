package ch.ungleich.uncloud.hook.model;

/** The {@code protocol} of a {@code <uc:allow>}: the IP protocol number nft matches as {@code meta l4proto}. */
public enum Protocol {
  TCP("tcp", 6),
  UDP("udp", 17),
  ICMP("icmp", 1),
  ICMPV6("icmpv6", 58),
  /** Every protocol (the default). */
  ANY("any", -1);

  private final String text;
  private final int number;

  Protocol(String text, int number) {
    this.text = text;
    this.number = number;
  }

  public String text() {
    return text;
  }

  /** The IP protocol number; -1 for {@link #ANY}. */
  public int number() {
    return number;
  }

  /** Whether {@code port} may be given: only tcp and udp have ports. */
  public boolean hasPorts() {
    return this == TCP || this == UDP;
  }

  /** Whether a rule with this protocol can match IPv4 ({@code v6} false) or IPv6 traffic. */
  public boolean covers(boolean v6) {
    return this == ICMP ? !v6 : this != ICMPV6 || v6;
  }

  /** Parses the attribute; null for an unknown value. */
  public static Protocol parse(String s) {
    for (Protocol p : values()) {
      if (p.text.equals(s)) {
        return p;
      }
    }
    return null;
  }
}
