package ch.ungleich.uncloud.hook.model;

import ch.ungleich.uncloud.hook.UncloudException;
import java.util.Locale;
import java.util.regex.Pattern;

/** A unicast Ethernet address, normalised to lower case {@code 52:54:00:aa:bb:01}. */
public record Mac(String text) {
  private static final Pattern FORMAT = Pattern.compile("[0-9a-f]{2}(:[0-9a-f]{2}){5}");

  public Mac {
    if (!FORMAT.matcher(text).matches()) {
      throw UncloudException.invalid("'" + text + "' is not a MAC address like 52:54:00:aa:bb:01");
    }
  }

  /** Parses {@code 52:54:00:AA:BB:01} (any case); rejects multicast/broadcast addresses. */
  public static Mac parse(String s) {
    if (s == null) {
      throw UncloudException.invalid("missing MAC address");
    }
    Mac m = new Mac(s.trim().toLowerCase(Locale.ROOT));
    if ((m.octet(0) & 1) != 0) {
      throw UncloudException.invalid("MAC " + m.text + " is a multicast address");
    }
    return m;
  }

  public int octet(int i) {
    return Integer.parseInt(text.substring(3 * i, 3 * i + 2), 16);
  }

  /** The modified EUI-64 link-local address (RFC 4291 appendix A) a guest derives from this MAC. */
  public IpPrefix eui64LinkLocal() {
    byte[] a = new byte[16];
    a[0] = (byte) 0xfe;
    a[1] = (byte) 0x80;
    a[8] = (byte) (octet(0) ^ 0x02);
    a[9] = (byte) octet(1);
    a[10] = (byte) octet(2);
    a[11] = (byte) 0xff;
    a[12] = (byte) 0xfe;
    a[13] = (byte) octet(3);
    a[14] = (byte) octet(4);
    a[15] = (byte) octet(5);
    return IpPrefix.of(a, 128);
  }

  /** Twelve hex digits, for names: {@code 525400aabb01}. */
  public String compact() {
    return text.replace(":", "");
  }

  // equals/hashCode written out: a record's generated ones bootstrap java.lang.runtime.ObjectMethods
  // through invokedynamic on first use, which spins ~30 LambdaForm classes that no CDS archive holds
  // (about 25 ms of every hook call; Mac is a HashMap key in PolicyBuilder).
  @Override
  public boolean equals(Object o) {
    return o instanceof Mac m && m.text.equals(text);
  }

  @Override
  public int hashCode() {
    return text.hashCode();
  }

  @Override
  public String toString() {
    return text;
  }
}
