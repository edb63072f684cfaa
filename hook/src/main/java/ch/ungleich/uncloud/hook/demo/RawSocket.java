package ch.ungleich.uncloud.hook.demo;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.ptr.IntByReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * An AF_PACKET raw socket on one interface of a named network namespace (libc through JNA; Linux,
 * 64-bit). The socket is created by a short-lived thread that first joins the namespace with
 * {@code setns(2)}: a socket belongs to the namespace it was created in, so the rest of the JVM stays
 * where it is and no helper process is needed.
 */
public final class RawSocket implements AutoCloseable {
  private static final int AF_PACKET = 17;
  private static final int SOCK_RAW = 3;
  private static final int ETH_P_ALL = 0x0003;
  private static final int SOL_SOCKET = 1;
  private static final int SO_RCVTIMEO = 20;
  private static final int O_RDONLY_CLOEXEC = 0x80000;
  private static final int CLONE_NEWNET = 0x40000000;
  private static final int PACKET_OUTGOING = 4;
  private static final int EAGAIN = 11;
  private static final int EINTR = 4;

  /** The libc calls used here; sizes as on LP64 Linux. */
  interface LibC extends Library {
    int open(String path, int flags) throws LastErrorException;

    int setns(int fd, int nstype) throws LastErrorException;

    int if_nametoindex(String name) throws LastErrorException;

    int socket(int domain, int type, int protocol) throws LastErrorException;

    int bind(int fd, byte[] addr, int len) throws LastErrorException;

    int setsockopt(int fd, int level, int name, byte[] value, int len) throws LastErrorException;

    long send(int fd, byte[] buf, long len, int flags) throws LastErrorException;

    long recvfrom(int fd, byte[] buf, long len, int flags, byte[] addr, IntByReference addrLen)
        throws LastErrorException;

    int close(int fd);
  }

  private static LibC libc;
  private final int fd;
  private final String where;

  private RawSocket(int fd, String where) {
    this.fd = fd;
    this.where = where;
  }

  private static synchronized LibC libc() {
    if (libc == null) {
      libc = Native.load("c", LibC.class);
    }
    return libc;
  }

  /**
   * Opens a raw socket on {@code ifname} in network namespace {@code netns} ({@code /run/netns/<netns>},
   * as made by {@code ip netns add}). {@code receive} false gives a send-only socket (protocol 0: the
   * kernel queues nothing for it).
   */
  public static RawSocket open(String netns, String ifname, boolean receive) {
    LibC c = libc();
    String where = netns + "/" + ifname;
    AtomicReference<Object> result = new AtomicReference<>();
    Thread t =
        new Thread(
            () -> {
              int ns = -1;
              try {
                ns = c.open("/run/netns/" + netns, O_RDONLY_CLOEXEC);
                c.setns(ns, CLONE_NEWNET); // this thread only; it ends right after
                int index = c.if_nametoindex(ifname);
                int proto = receive ? htons(ETH_P_ALL) : 0;
                int s = c.socket(AF_PACKET, SOCK_RAW, proto);
                try {
                  c.bind(s, sockaddr(proto, index), 20);
                } catch (LastErrorException e) {
                  c.close(s);
                  throw e;
                }
                result.set(s);
              } catch (LastErrorException | UnsatisfiedLinkError e) {
                result.set(e);
              } finally {
                if (ns >= 0) {
                  c.close(ns);
                }
              }
            },
            "rawsocket-" + where);
    t.start();
    try {
      t.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new UncloudException(ExitCodes.APPLY_FAILED, "interrupted while opening a socket in " + where);
    }
    Object r = result.get();
    if (r instanceof Integer s) {
      return new RawSocket(s, where);
    }
    throw new UncloudException(
        ExitCodes.APPLY_FAILED, "cannot open a raw socket on " + where + ": " + ((Throwable) r).getMessage());
  }

  /** Sends one frame as it is (the kernel adds no header). */
  public void send(byte[] frame) {
    try {
      libc().send(fd, frame, frame.length, 0);
    } catch (LastErrorException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "send on " + where + ": " + e.getMessage());
    }
  }

  /** Frames that arrived (not the ones this host sent) until {@code millis} passed. */
  public List<byte[]> receive(long millis) {
    List<byte[]> out = new ArrayList<>();
    LibC c = libc();
    ByteBuffer tv = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder());
    tv.putLong(0).putLong(20_000); // 20 ms per recvfrom, so the deadline is kept
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv.array(), 16);
    long deadline = System.nanoTime() + millis * 1_000_000L;
    byte[] buf = new byte[65536];
    byte[] addr = new byte[20];
    while (System.nanoTime() < deadline) {
      IntByReference len = new IntByReference(addr.length);
      long n;
      try {
        n = c.recvfrom(fd, buf, buf.length, 0, addr, len);
      } catch (LastErrorException e) {
        if (e.getErrorCode() == EAGAIN || e.getErrorCode() == EINTR) {
          continue;
        }
        throw new UncloudException(ExitCodes.APPLY_FAILED, "receive on " + where + ": " + e.getMessage());
      }
      if (n > 0 && (addr[10] & 0xff) != PACKET_OUTGOING) {
        byte[] f = new byte[(int) n];
        System.arraycopy(buf, 0, f, 0, (int) n);
        out.add(f);
      }
    }
    return out;
  }

  @Override
  public void close() {
    libc().close(fd);
  }

  /** struct sockaddr_ll: family, protocol (network order), ifindex, then zeros. */
  private static byte[] sockaddr(int protoNetworkOrder, int ifindex) {
    ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.nativeOrder());
    b.putShort((short) AF_PACKET);
    b.putShort((short) protoNetworkOrder);
    b.putInt(ifindex);
    return b.array();
  }

  /** The value whose in-memory bytes are {@code v} in network order. */
  private static int htons(int v) {
    return ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN ? v : Short.reverseBytes((short) v) & 0xffff;
  }
}
