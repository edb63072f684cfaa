package ch.ungleich.uncloud.hook.nft;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.ptr.IntByReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Optional;

/**
 * The nf_tables generation of this process's network namespace, asked of the kernel with one
 * {@code NFT_MSG_GETGEN} netlink request (libc through JNA; Linux, 64-bit): no nft process, no
 * listing. The kernel raises the generation id by one with every committed nf_tables transaction in
 * the namespace (any table, any tool), so an unchanged id means no table changed. Counter resets and
 * elements a rule adds from the packet path are not transactions and do not raise it.
 *
 * <p>The id starts afresh in every namespace, so it is paired with the namespace's cookie
 * ({@code SO_NETNS_COOKIE}, Linux 5.14; unique among the namespaces of one boot, never reused) and the
 * boot id.
 */
public final class NftGeneration {
  private static final int AF_NETLINK = 16;
  private static final int SOCK_RAW_CLOEXEC = 3 | 0x80000;
  private static final int NETLINK_NETFILTER = 12;
  private static final int SOL_SOCKET = 1;
  private static final int SO_RCVTIMEO = 20;
  private static final int SO_NETNS_COOKIE = 71;
  private static final int NFT_MSG_GETGEN = 10 << 8 | 16;
  private static final int NFT_MSG_NEWGEN = 10 << 8 | 15;
  private static final int NLMSG_ERROR = 2;
  private static final int NFTA_GEN_ID = 1;

  /** The libc calls used here; sizes as on LP64 Linux. */
  interface LibC extends Library {
    int socket(int domain, int type, int protocol) throws LastErrorException;

    int setsockopt(int fd, int level, int name, byte[] value, int len) throws LastErrorException;

    int getsockopt(int fd, int level, int name, byte[] value, IntByReference len) throws LastErrorException;

    long send(int fd, byte[] buf, long len, int flags) throws LastErrorException;

    long recv(int fd, byte[] buf, long len, int flags) throws LastErrorException;

    int close(int fd);
  }

  private static LibC libc;

  private NftGeneration() {}

  private static synchronized LibC libc() {
    if (libc == null) {
      libc = Native.load("c", LibC.class);
    }
    return libc;
  }

  /**
   * {@code <boot id>/<netns cookie>:<generation id>}, e.g. {@code 5f0c...:4026531840:17}; empty when
   * the kernel cannot tell (no libc, no netlink, no permission, a kernel before 5.14): then callers
   * treat every table as possibly changed.
   */
  public static Optional<String> current(String bootId) {
    if (bootId == null || bootId.isBlank()) {
      return Optional.empty();
    }
    int fd = -1;
    LibC c;
    try {
      c = libc();
      fd = c.socket(AF_NETLINK, SOCK_RAW_CLOEXEC, NETLINK_NETFILTER);
      ByteBuffer tv = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder()).putLong(1).putLong(0);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv.array(), 16);
      byte[] cookie = new byte[8];
      IntByReference len = new IntByReference(8);
      c.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, len);
      if (len.getValue() != 8) {
        return Optional.empty();
      }
      long netns = ByteBuffer.wrap(cookie).order(ByteOrder.nativeOrder()).getLong();
      // nlmsghdr (length, type, flags NLM_F_REQUEST, seq, pid) + nfgenmsg (AF_UNSPEC, version 0, res_id 0)
      ByteBuffer req = ByteBuffer.allocate(20).order(ByteOrder.nativeOrder());
      req.putInt(20).putShort((short) NFT_MSG_GETGEN).putShort((short) 1).putInt(1).putInt(0);
      req.put((byte) 0).put((byte) 0).putShort((short) 0);
      c.send(fd, req.array(), 20, 0);
      byte[] buf = new byte[4096];
      long n = c.recv(fd, buf, buf.length, 0);
      Long id = parse(buf, (int) n);
      return id == null ? Optional.empty() : Optional.of(bootId.strip() + ":" + Long.toUnsignedString(netns) + ":" + id);
    } catch (LastErrorException | UnsatisfiedLinkError | NoClassDefFoundError e) {
      return Optional.empty();
    } finally {
      if (fd >= 0) {
        libc.close(fd);
      }
    }
  }

  /** The generation id in a {@code NFT_MSG_NEWGEN} answer; null for anything else (an error answer). */
  static Long parse(byte[] buf, int n) {
    if (n < 20) {
      return null;
    }
    ByteBuffer b = ByteBuffer.wrap(buf, 0, n).order(ByteOrder.nativeOrder());
    int len = Math.min(b.getInt(0), n);
    int type = b.getShort(4) & 0xffff;
    if (type == NLMSG_ERROR || type != NFT_MSG_NEWGEN) {
      return null;
    }
    int off = 20;
    while (off + 4 <= len) {
      int alen = b.getShort(off) & 0xffff;
      int atype = b.getShort(off + 2) & 0x3fff;
      if (alen < 4) {
        return null;
      }
      if (atype == NFTA_GEN_ID && alen >= 8) {
        return ByteBuffer.wrap(buf, off + 4, 4).order(ByteOrder.BIG_ENDIAN).getInt() & 0xffffffffL;
      }
      off += (alen + 3) & ~3;
    }
    return null;
  }
}
