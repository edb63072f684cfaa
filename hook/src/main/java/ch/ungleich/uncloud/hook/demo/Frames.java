package ch.ungleich.uncloud.hook.demo;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Builds Ethernet frames byte by byte: ARP, IPv4/UDP, IPv6/UDP, ICMPv6 (RA, NA) and 802.1Q, with
 * correct IPv4 header, UDP and ICMPv6 checksums. Pure: no sockets; {@link RawSocket} sends the bytes.
 * Addresses are literals (MAC {@code 52:54:00:00:00:01}, IPv4 dotted quad, IPv6 text); nothing is
 * ever looked up.
 */
public final class Frames {
  public static final int ETH_IPV4 = 0x0800;
  public static final int ETH_ARP = 0x0806;
  public static final int ETH_IPV6 = 0x86dd;
  public static final int ETH_VLAN = 0x8100;
  public static final int PROTO_UDP = 17;
  public static final int PROTO_ICMPV6 = 58;
  public static final String BROADCAST = "ff:ff:ff:ff:ff:ff";

  private Frames() {}

  /** An Ethernet II frame. */
  public static byte[] ethernet(String dst, String src, int ethertype, byte[] payload) {
    Buf b = new Buf();
    b.put(mac(dst)).put(mac(src)).u16(ethertype).put(payload);
    return b.bytes();
  }

  /** An 802.1Q tagged frame: the tag, then the inner ethertype and payload. */
  public static byte[] vlan(String dst, String src, int vlanId, int innerType, byte[] payload) {
    Buf b = new Buf();
    b.put(mac(dst)).put(mac(src)).u16(ETH_VLAN).u16(vlanId & 0x0fff).u16(innerType).put(payload);
    return b.bytes();
  }

  /** An ARP packet for Ethernet/IPv4; op 1 = request, 2 = reply. */
  public static byte[] arp(int op, String senderMac, String senderIp, String targetMac, String targetIp) {
    Buf b = new Buf();
    b.u16(1).u16(ETH_IPV4).u8(6).u8(4).u16(op);
    b.put(mac(senderMac)).put(ipv4(senderIp)).put(mac(targetMac)).put(ipv4(targetIp));
    return b.bytes();
  }

  /** An IPv4 packet (no options, TTL 64, DF) with its header checksum. */
  public static byte[] ipv4Packet(String src, String dst, int protocol, byte[] payload) {
    Buf b = new Buf();
    b.u8(0x45).u8(0).u16(20 + payload.length).u16(0).u16(0x4000).u8(64).u8(protocol).u16(0);
    b.put(ipv4(src)).put(ipv4(dst));
    byte[] h = b.bytes();
    int sum = checksum(h, 0, h.length, 0);
    h[10] = (byte) (sum >> 8);
    h[11] = (byte) sum;
    return concat(h, payload);
  }

  /** A UDP datagram over IPv4, checksum over the RFC 768 pseudo header. */
  public static byte[] udp4(String src, String dst, int sport, int dport, byte[] data) {
    byte[] udp = udpHeader(sport, dport, data);
    Buf pseudo = new Buf().put(ipv4(src)).put(ipv4(dst)).u8(0).u8(PROTO_UDP).u16(udp.length);
    setChecksum(udp, 6, pseudo.bytes(), true);
    return ipv4Packet(src, dst, PROTO_UDP, udp);
  }

  /** An IPv6 packet (hop limit 64, or 255 for ICMPv6 ND as RFC 4861 requires). */
  public static byte[] ipv6Packet(String src, String dst, int nextHeader, int hopLimit, byte[] payload) {
    Buf b = new Buf();
    b.u32(0x60000000).u16(payload.length).u8(nextHeader).u8(hopLimit).put(ipv6(src)).put(ipv6(dst));
    return concat(b.bytes(), payload);
  }

  /** A UDP datagram over IPv6 with its mandatory checksum. */
  public static byte[] udp6(String src, String dst, int sport, int dport, byte[] data) {
    byte[] udp = udpHeader(sport, dport, data);
    setChecksum(udp, 6, pseudo6(src, dst, PROTO_UDP, udp.length), true);
    return ipv6Packet(src, dst, PROTO_UDP, 64, udp);
  }

  /** An ICMPv6 message (type, code, body after the checksum) in an IPv6 packet with hop limit 255. */
  public static byte[] icmp6(String src, String dst, int type, int code, byte[] body) {
    Buf b = new Buf().u8(type).u8(code).u16(0).put(body);
    byte[] m = b.bytes();
    setChecksum(m, 2, pseudo6(src, dst, PROTO_ICMPV6, m.length), false);
    return ipv6Packet(src, dst, PROTO_ICMPV6, 255, m);
  }

  /** A router advertisement (type 134): hop limit 64, router lifetime 1800 s, source link-layer option. */
  public static byte[] routerAdvertisement(String srcLinkLocal, String srcMac) {
    Buf body = new Buf().u8(64).u8(0).u16(1800).u32(0).u32(0);
    body.u8(1).u8(1).put(mac(srcMac));
    return icmp6(srcLinkLocal, "ff02::1", 134, 0, body.bytes());
  }

  /** An unsolicited neighbor advertisement (type 136, override flag) for {@code target}. */
  public static byte[] neighborAdvertisement(String src, String target, String targetMac) {
    Buf body = new Buf().u32(0x20000000).put(ipv6(target));
    body.u8(2).u8(1).put(mac(targetMac));
    return icmp6(src, "ff02::1", 136, 0, body.bytes());
  }

  /** The demo's marker: {@code UCDEMO#07}, found again in the received bytes. */
  public static byte[] marker(int id) {
    return String.format("UCDEMO#%02d", id).getBytes(StandardCharsets.US_ASCII);
  }

  /** The id of the marker in a frame, or -1. */
  public static int markerId(byte[] frame, int length) {
    byte[] m = "UCDEMO#".getBytes(StandardCharsets.US_ASCII);
    outer:
    for (int i = 0; i + m.length + 2 <= length; i++) {
      for (int k = 0; k < m.length; k++) {
        if (frame[i + k] != m[k]) {
          continue outer;
        }
      }
      int hi = frame[i + m.length] - '0';
      int lo = frame[i + m.length + 1] - '0';
      if (hi >= 0 && hi <= 9 && lo >= 0 && lo <= 9) {
        return hi * 10 + lo;
      }
    }
    return -1;
  }

  public static byte[] concat(byte[] a, byte[] b) {
    byte[] out = new byte[a.length + b.length];
    System.arraycopy(a, 0, out, 0, a.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  /** The Internet checksum (RFC 1071) of {@code data[off..off+len)}, starting from a partial sum. */
  public static int checksum(byte[] data, int off, int len, int initial) {
    long sum = initial;
    for (int i = 0; i + 1 < len; i += 2) {
      sum += ((data[off + i] & 0xff) << 8) | (data[off + i + 1] & 0xff);
    }
    if ((len & 1) == 1) {
      sum += (data[off + len - 1] & 0xff) << 8;
    }
    while ((sum >> 16) != 0) {
      sum = (sum & 0xffff) + (sum >> 16);
    }
    return (int) (~sum & 0xffff);
  }

  public static byte[] mac(String text) {
    String[] p = text.split(":");
    if (p.length != 6) {
      throw new IllegalArgumentException("not a MAC address: " + text);
    }
    byte[] b = new byte[6];
    for (int i = 0; i < 6; i++) {
      b[i] = (byte) Integer.parseInt(p[i], 16);
    }
    return b;
  }

  public static byte[] ipv4(String text) {
    String[] p = text.split("\\.");
    if (p.length != 4) {
      throw new IllegalArgumentException("not an IPv4 address: " + text);
    }
    byte[] b = new byte[4];
    for (int i = 0; i < 4; i++) {
      int v = Integer.parseInt(p[i]);
      if (v < 0 || v > 255) {
        throw new IllegalArgumentException("not an IPv4 address: " + text);
      }
      b[i] = (byte) v;
    }
    return b;
  }

  /** An IPv6 literal to 16 bytes ({@code ::} compression; no embedded IPv4, no zone). */
  public static byte[] ipv6(String text) {
    int gap = text.indexOf("::");
    String[] head = gap < 0 ? text.split(":") : split(text.substring(0, gap));
    String[] tail = gap < 0 ? new String[0] : split(text.substring(gap + 2));
    if (gap < 0 && head.length != 8 || head.length + tail.length > (gap < 0 ? 8 : 7)) {
      throw new IllegalArgumentException("not an IPv6 address: " + text);
    }
    byte[] b = new byte[16];
    for (int i = 0; i < head.length; i++) {
      group(b, i, head[i], text);
    }
    for (int i = 0; i < tail.length; i++) {
      group(b, 8 - tail.length + i, tail[i], text);
    }
    return b;
  }

  private static String[] split(String s) {
    return s.isEmpty() ? new String[0] : s.split(":");
  }

  private static void group(byte[] b, int index, String g, String text) {
    if (g.isEmpty() || g.length() > 4) {
      throw new IllegalArgumentException("not an IPv6 address: " + text);
    }
    int v = Integer.parseInt(g, 16);
    b[2 * index] = (byte) (v >> 8);
    b[2 * index + 1] = (byte) v;
  }

  private static byte[] udpHeader(int sport, int dport, byte[] data) {
    return new Buf().u16(sport).u16(dport).u16(8 + data.length).u16(0).put(data).bytes();
  }

  private static byte[] pseudo6(String src, String dst, int nextHeader, int length) {
    return new Buf().put(ipv6(src)).put(ipv6(dst)).u32(length).u8(0).u8(0).u8(0).u8(nextHeader).bytes();
  }

  /** Writes the checksum of pseudo header + message at {@code at}; UDP sends 0 as 0xffff. */
  private static void setChecksum(byte[] msg, int at, byte[] pseudo, boolean udp) {
    byte[] all = concat(pseudo, msg);
    int sum = checksum(all, 0, all.length, 0);
    if (udp && sum == 0) {
      sum = 0xffff;
    }
    msg[at] = (byte) (sum >> 8);
    msg[at + 1] = (byte) sum;
  }

  /** A tiny big-endian byte writer. */
  private static final class Buf {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    Buf u8(int v) {
      out.write(v);
      return this;
    }

    Buf u16(int v) {
      out.write(v >> 8);
      out.write(v);
      return this;
    }

    Buf u32(int v) {
      return u16(v >>> 16).u16(v & 0xffff);
    }

    Buf put(byte[] b) {
      out.writeBytes(b);
      return this;
    }

    byte[] bytes() {
      return out.toByteArray();
    }
  }
}
