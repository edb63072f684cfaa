package ch.ungleich.uncloud.hook.state;

/** Who a tap's rules belong to: the domain's UUID, the NIC's MAC and, for humans, the domain's name. */
public record Owner(String uuid, String mac, String domain) {
  /** One line: {@code <uuid> <mac> <name>}. */
  public String encode() {
    return uuid + " " + mac + " " + domain.replaceAll("\\s", "_") + "\n";
  }

  /** The inverse of {@link #encode}; null for anything that is not such a line. */
  public static Owner decode(String line) {
    String[] f = line.strip().split(" ", 3);
    if (f.length < 2) {
      return null;
    }
    return new Owner(f[0], f[1], f.length == 3 ? f[2] : "");
  }

  /** The element comment in our map: owner first, so {@code nft list} shows whose port it is. */
  public String comment() {
    return domain + " " + uuid + " " + mac;
  }
}
