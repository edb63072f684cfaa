package ch.ungleich.uncloud.hook.model;

import ch.ungleich.uncloud.hook.UncloudException;
import java.math.BigInteger;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.regex.Pattern;

/**
 * An IPv4 or IPv6 network: an address with a prefix length, host bits zero. A single address is a
 * /32 or /128. Parsing never touches DNS: only literals are accepted.
 */
public record IpPrefix(boolean v6, BigInteger network, int length) implements Comparable<IpPrefix> {
  private static final Pattern V4 =
      Pattern.compile("(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}");
  private static final Pattern V6_CHARS = Pattern.compile("[0-9A-Fa-f:.]+");
  private static final Pattern LENGTH = Pattern.compile("0|[1-9][0-9]{0,2}");

  /** Parses {@code 192.0.2.10}, {@code 2001:db8::/64} and the like; rejects host bits in a prefix. */
  public static IpPrefix parse(String text) {
    String s = text.trim();
    int slash = s.indexOf('/');
    String addr = slash < 0 ? s : s.substring(0, slash);
    byte[] bytes = literal(addr, text);
    int max = bytes.length * 8;
    int len = max;
    if (slash >= 0) {
      String l = s.substring(slash + 1);
      if (!LENGTH.matcher(l).matches() || Integer.parseInt(l) > max) {
        throw UncloudException.invalid("'" + text + "': prefix length must be 0 to " + max);
      }
      len = Integer.parseInt(l);
    }
    IpPrefix p = new IpPrefix(bytes.length == 16, new BigInteger(1, bytes), len);
    if (!p.network.and(p.hostMask()).equals(BigInteger.ZERO)) {
      IpPrefix fixed = new IpPrefix(p.v6, p.network.andNot(p.hostMask()), len);
      throw UncloudException.invalid("'" + text + "' has host bits set; the network is " + fixed);
    }
    return p;
  }

  /** An address from raw bytes (4 or 16) and a length; host bits are cleared. */
  public static IpPrefix of(byte[] bytes, int length) {
    IpPrefix p = new IpPrefix(bytes.length == 16, new BigInteger(1, bytes), length);
    return new IpPrefix(p.v6, p.network.andNot(p.hostMask()), length);
  }

  private static byte[] literal(String addr, String original) {
    if (V4.matcher(addr).matches()) {
      String[] parts = addr.split("\\.");
      byte[] b = new byte[4];
      for (int i = 0; i < 4; i++) {
        b[i] = (byte) Integer.parseInt(parts[i]);
      }
      return b;
    }
    if (addr.indexOf(':') >= 0 && V6_CHARS.matcher(addr).matches()) {
      try {
        InetAddress a = InetAddress.getByName(addr); // an IPv6 literal: parsed, never looked up
        if (a instanceof Inet4Address) {
          throw UncloudException.invalid(
              "'" + original + "' is an IPv4-mapped IPv6 address; write the IPv4 address " + a.getHostAddress());
        }
        return a.getAddress();
      } catch (UnknownHostException e) {
        // fall through to the error below
      }
    }
    throw UncloudException.invalid("'" + original + "' is not an IPv4 or IPv6 address or prefix");
  }

  public int bits() {
    return v6 ? 128 : 32;
  }

  public BigInteger hostMask() {
    return BigInteger.ONE.shiftLeft(bits() - length).subtract(BigInteger.ONE);
  }

  public BigInteger first() {
    return network;
  }

  public BigInteger last() {
    return network.or(hostMask());
  }

  public boolean isSingleAddress() {
    return length == bits();
  }

  public boolean overlaps(IpPrefix o) {
    return v6 == o.v6 && first().compareTo(o.last()) <= 0 && o.first().compareTo(last()) <= 0;
  }

  public boolean contains(IpPrefix o) {
    return v6 == o.v6 && first().compareTo(o.first()) <= 0 && o.last().compareTo(last()) <= 0;
  }

  /** The address as nft and humans write it: {@code 192.0.2.10}, {@code 2001:db8::10}. */
  public String address() {
    return format(network, v6);
  }

  /** Formats an integer as an address of this family (RFC 5952 for IPv6). */
  public static String format(BigInteger value, boolean v6) {
    byte[] raw = value.toByteArray();
    byte[] b = new byte[v6 ? 16 : 4];
    int copy = Math.min(raw.length, b.length);
    System.arraycopy(raw, raw.length - copy, b, b.length - copy, copy);
    if (!v6) {
      return (b[0] & 255) + "." + (b[1] & 255) + "." + (b[2] & 255) + "." + (b[3] & 255);
    }
    int[] g = new int[8];
    for (int i = 0; i < 8; i++) {
      g[i] = ((b[2 * i] & 255) << 8) | (b[2 * i + 1] & 255);
    }
    int bestStart = -1;
    int bestLen = 1;
    for (int i = 0; i < 8; ) {
      if (g[i] != 0) {
        i++;
        continue;
      }
      int j = i;
      while (j < 8 && g[j] == 0) {
        j++;
      }
      if (j - i > bestLen) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    }
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 8; i++) {
      if (i == bestStart) {
        sb.append("::");
        i += bestLen - 1;
        continue;
      }
      if (sb.length() > 0 && sb.charAt(sb.length() - 1) != ':') {
        sb.append(':');
      }
      sb.append(Integer.toHexString(g[i]));
    }
    return sb.toString();
  }

  @Override
  public int compareTo(IpPrefix o) {
    if (v6 != o.v6) {
      return v6 ? 1 : -1;
    }
    int c = network.compareTo(o.network);
    return c != 0 ? c : Integer.compare(length, o.length);
  }

  @Override
  public String toString() {
    return isSingleAddress() ? address() : address() + "/" + length;
  }

  // equals/hashCode written out for the same reason as in Mac: the record's generated ones cost the
  // hook ~25 ms of invokedynamic bootstrap (IpPrefix is a map key in PolicyBuilder.claim).
  @Override
  public boolean equals(Object o) {
    return o instanceof IpPrefix p && p.v6 == v6 && p.length == length && p.network.equals(network);
  }

  @Override
  public int hashCode() {
    return (network.hashCode() * 31 + length) * 2 + (v6 ? 1 : 0);
  }
}
