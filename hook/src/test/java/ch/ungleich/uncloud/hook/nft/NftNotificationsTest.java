package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The netlink parsing of {@link NftNotifications} on datagrams built as the kernel sends them. */
class NftNotificationsTest {
  static final Set<NftNotifications.Table> OURS = Set.of(new NftNotifications.Table(NftNotifications.BRIDGE, "uncloud"));

  static byte[] attr(int type, byte[] payload) {
    int len = 4 + payload.length;
    ByteBuffer b = ByteBuffer.allocate((len + 3) & ~3).order(ByteOrder.nativeOrder());
    b.putShort((short) len).putShort((short) type).put(payload);
    return b.array();
  }

  static byte[] str(String s) {
    byte[] x = s.getBytes(StandardCharsets.UTF_8);
    byte[] z = new byte[x.length + 1];
    System.arraycopy(x, 0, z, 0, x.length);
    return z;
  }

  static byte[] cat(byte[]... parts) {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    for (byte[] p : parts) {
      o.writeBytes(p);
    }
    return o.toByteArray();
  }

  static byte[] be32(int v) {
    return ByteBuffer.allocate(4).order(ByteOrder.BIG_ENDIAN).putInt(v).array();
  }

  /** nlmsghdr + nfgenmsg + attributes. */
  static byte[] msg(int nftMsg, int family, int gen, byte[]... attrs) {
    byte[] body = cat(attrs);
    int len = 20 + body.length;
    ByteBuffer b = ByteBuffer.allocate(len).order(ByteOrder.nativeOrder());
    b.putInt(len).putShort((short) (10 << 8 | nftMsg)).putShort((short) 0).putInt(0).putInt(0);
    b.put((byte) family).put((byte) 0).order(ByteOrder.BIG_ENDIAN).putShort((short) gen).order(ByteOrder.nativeOrder());
    b.put(body);
    return b.array();
  }

  static byte[] newgen(int id, int pid, String proc) {
    return msg(15, 0, id, attr(1, be32(id)), attr(2, be32(pid)), attr(3, str(proc)));
  }

  static byte[] element(String key) {
    byte[] k = new byte[16];
    byte[] s = key.getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(s, 0, k, 0, s.length);
    return attr(1, attr(1, attr(1, k))); // NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE } }
  }

  @Test
  void oneGenerationsObjectsArriveWithItsNewgen() {
    byte[] d = cat(
        msg(8, 7, 5, attr(1, str("uncloud")), attr(2, str("filter-prerouting"))),
        msg(14, 7, 5, attr(1, str("uncloud")), attr(2, str("ports")), attr(3, cat(element("vnet0"), element("vnet12")))),
        msg(5, 7, 5, attr(1, str("uncloud")), attr(3, str("port-vnet0"))),
        msg(2, 7, 5, attr(1, str("other"))), // another table: not kept
        newgen(5, 4242, "nft"));
    NftNotifications.Collector c = new NftNotifications.Collector(OURS, id -> false, low -> false);
    List<NftNotifications.Generation> gens = c.add(d, d.length);
    assertEquals(1, gens.size());
    NftNotifications.Generation g = gens.get(0);
    assertEquals(5, g.id());
    assertEquals(4242, g.pid());
    assertEquals("nft", g.process());
    assertEquals(List.of(
        new NftNotifications.Event(NftNotifications.Type.RULE, false, 7, "uncloud", "filter-prerouting", List.of()),
        new NftNotifications.Event(NftNotifications.Type.ELEMENT, false, 7, "uncloud", "ports", List.of("vnet0", "vnet12")),
        new NftNotifications.Event(NftNotifications.Type.CHAIN, false, 7, "uncloud", "port-vnet0", List.of())), g.events());
  }

  @Test
  void aGenerationSpreadOverDatagramsAndOursSkipped() {
    NftNotifications.Collector c = new NftNotifications.Collector(OURS, id -> id == 7, low -> low == 7);
    byte[] a = msg(2, 7, 6, attr(1, str("uncloud")));
    assertTrue(c.add(a, a.length).isEmpty());
    byte[] b = newgen(6, 1, "nft");
    assertEquals(1, c.add(b, b.length).size());
    byte[] ours = cat(msg(2, 7, 7, attr(1, str("uncloud"))), newgen(7, 2, "java"));
    assertTrue(c.add(ours, ours.length).isEmpty(), "our own generation is not reported");
    byte[] foreignNothing = newgen(8, 3, "iptables-nft");
    assertTrue(c.add(foreignNothing, foreignNothing.length).isEmpty(), "nothing of our tables: not reported");
  }

  @Test
  void aLossIsReportedWithTheNextGeneration() {
    NftNotifications.Collector c = new NftNotifications.Collector(OURS, id -> false, low -> false);
    c.lost = true;
    byte[] b = newgen(9, 1, "nft");
    List<NftNotifications.Generation> g = c.add(b, b.length);
    assertTrue(g.get(0).lost());
    assertTrue(c.add(newgen(10, 1, "nft"), newgen(10, 1, "nft").length).isEmpty());
  }

  @Test
  void keysThatAreNotInterfaceNamesAreHex() {
    byte[] k = {(byte) 0xc0, 0, 2, 1};
    assertEquals("c0000201", NftNotifications.Collector.key(k, 0, 4));
    byte[] n = {'v', 'n', 'e', 't', '0', 0, 0, 0};
    assertEquals("vnet0", NftNotifications.Collector.key(n, 0, 8));
  }
}
