package ch.ungleich.uncloud.tests.lab;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The identity of one VM NIC as the frame expressions see it: {@code MAC}, {@code IP4},
 * {@code IP6}, {@code NET6} (an address inside the routed prefix), {@code LL} (EUI-64 link-local
 * from the MAC) plus the lab-wide names of {@link #COMMON}.
 */
public record Guest(String mac, String ip4, String ip6, String prefix6) {
  /**
   * Names every frame expression may use: the observer plays the router ({@code GW_*}); the
   * {@code SPOOF*}/{@code FOREIGN_LL} addresses belong to nobody in the lab.
   */
  public static final Map<String, String> COMMON = Map.of(
      "GW_MAC", NetnsLab.OBSERVER_MAC,
      "GW4", "192.0.2.1",
      "GW6", "2001:db8:0:1::1",
      "GW_LL", "fe80::1",
      "SPOOF_MAC", "52:54:00:66:66:66",
      "SPOOF4", "192.0.2.66",
      "SPOOF6", "2001:db8:0:1::66",
      "FOREIGN_LL", "fe80::66",
      "OUTSIDE6", "2001:db8:1235::5");

  /** A guest with only a MAC (an unlisted NIC): IP fields are documentation addresses it was not given. */
  public static Guest macOnly(String mac, String ip4, String ip6) {
    return new Guest(mac, ip4, ip6, "2001:db8:ffff::/64");
  }

  /** fe80::/64 + modified EUI-64 of the MAC. */
  public String linkLocal() {
    return eui64(mac);
  }

  /** An address inside {@link #prefix6()} (the base address + 5). */
  public String net6() {
    String base = prefix6.substring(0, prefix6.indexOf('/'));
    byte[] b = addr(base);
    b[15] += 5;
    try {
      return InetAddress.getByAddress(b).getHostAddress();
    } catch (UnknownHostException e) {
      throw new IllegalStateException(e);
    }
  }

  public Map<String, String> vars() {
    Map<String, String> v = new LinkedHashMap<>(COMMON);
    v.put("MAC", mac);
    v.put("IP4", ip4);
    v.put("IP6", ip6);
    v.put("NET6", net6());
    v.put("LL", linkLocal());
    return v;
  }

  public static String eui64(String mac) {
    String[] o = mac.split(":");
    int[] b = new int[6];
    for (int i = 0; i < 6; i++) {
      b[i] = Integer.parseInt(o[i], 16);
    }
    return String.format("fe80::%x:%x:%x:%x", ((b[0] ^ 0x02) << 8) | b[1], (b[2] << 8) | 0xff,
        0xfe00 | b[3], (b[4] << 8) | b[5]);
  }

  /** The 16 bytes of an IPv6 literal (no name lookup). */
  public static byte[] addr(String literal) {
    if (!literal.contains(":")) {
      throw new IllegalArgumentException("not an IPv6 literal: " + literal);
    }
    try {
      return InetAddress.getByName(literal).getAddress();
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(literal, e);
    }
  }

  /** {@code 0x} + 32 hex digits, for raw nft payload matches. */
  public static String hex128(String literal) {
    return "0x" + HexFormat.of().formatHex(addr(literal));
  }
}
