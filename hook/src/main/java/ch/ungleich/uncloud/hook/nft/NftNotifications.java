package ch.ungleich.uncloud.hook.nft;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.IntPredicate;
import java.util.function.LongPredicate;

/**
 * The kernel's nf_tables notifications, read from netlink (group {@code NFNLGRP_NFTABLES}, libc
 * through JNA; Linux, 64-bit): what {@code nft monitor} prints, without a child process and without
 * text to parse. The kernel sends every object a committed transaction added or deleted, then one
 * {@code NFT_MSG_NEWGEN} with the generation id the transaction produced and the process that
 * committed it; each message carries the low 16 bits of that id. So the notifications of one
 * transaction arrive together, and a caller that knows the id its own transaction produced can skip
 * all of them unread ({@code ours}).
 *
 * <p>Only objects of the given tables are kept (a generation's events are bounded by what it changed
 * in them). A full receive buffer (the kernel drops notifications: {@code ENOBUFS}) marks the next
 * generation {@link Generation#lost}: the caller must then compare with the kernel itself.
 */
public final class NftNotifications implements AutoCloseable {
  /** NFPROTO_INET, NFPROTO_BRIDGE. */
  public static final int INET = 1;
  public static final int BRIDGE = 7;

  /** What kind of object a notification is about. */
  public enum Type {
    TABLE, CHAIN, RULE, SET, ELEMENT
  }

  /**
   * One notification.
   *
   * @param add true for NEW*, false for DEL* (and DESTROY*)
   * @param name the chain's or set's name; the table's for {@link Type#TABLE}
   * @param keys {@link Type#ELEMENT}: the elements' keys, an interface name as text, anything else as
   *     hex; empty otherwise
   */
  public record Event(Type type, boolean add, int family, String table, String name, List<String> keys) {
    public Event {
      keys = List.copyOf(keys);
    }
  }

  /**
   * The notifications of one committed transaction that touched the watched tables.
   *
   * @param pid the committing process (0 when the kernel did not say)
   * @param lost notifications were dropped before this generation ended (receive buffer full)
   */
  public record Generation(long id, int pid, String process, List<Event> events, boolean lost) {}

  /** A watched table: family ({@link #BRIDGE}, {@link #INET}) and name. */
  public record Table(int family, String name) {}

  private static final int AF_NETLINK = 16;
  private static final int SOCK_RAW_CLOEXEC = 3 | 0x80000;
  private static final int NETLINK_NETFILTER = 12;
  private static final int SOL_SOCKET = 1;
  private static final int SO_RCVBUF = 8;
  private static final int SO_RCVTIMEO = 20;
  private static final int SO_RCVBUFFORCE = 33;
  private static final int SOL_NETLINK = 270;
  private static final int NETLINK_ADD_MEMBERSHIP = 1;
  private static final int NFNLGRP_NFTABLES = 7;
  private static final int ENOBUFS = 105;
  private static final int EAGAIN = 11;
  private static final int EINTR = 4;
  /** Enough for one full restore at thousands of ports without drops; memory is used only while queued. */
  private static final int RCVBUF = 64 << 20;
  private static final int SUBSYS_NFTABLES = 10;

  interface LibC extends Library {
    int socket(int domain, int type, int protocol) throws LastErrorException;

    int setsockopt(int fd, int level, int name, byte[] value, int len) throws LastErrorException;

    int bind(int fd, byte[] addr, int len) throws LastErrorException;

    long recv(int fd, Pointer buf, long len, int flags) throws LastErrorException;

    int close(int fd);
  }

  private final LibC libc;
  private final int fd;
  private volatile boolean closed;

  private NftNotifications(LibC libc, int fd) {
    this.libc = libc;
    this.fd = fd;
  }

  /**
   * Subscribes and starts a daemon thread that calls {@code onGeneration} for every committed
   * transaction that added or deleted something in {@code tables} (or lost notifications), except the
   * ones {@code ours} claims by their id (asked once per generation, at its end); {@code oursLow} tells
   * by the low 16 bits each notification carries which to skip unread; {@code onEnd} once if reading
   * fails for good.
   *
   * @throws IllegalStateException when the socket cannot be opened (no libc, no permission)
   */
  public static NftNotifications start(Set<Table> tables, LongPredicate ours, IntPredicate oursLow,
      Consumer<Generation> onGeneration, Consumer<String> onEnd) {
    LibC c;
    int fd;
    try {
      c = Native.load("c", LibC.class);
      fd = c.socket(AF_NETLINK, SOCK_RAW_CLOEXEC, NETLINK_NETFILTER);
    } catch (LastErrorException | UnsatisfiedLinkError | NoClassDefFoundError e) {
      throw new IllegalStateException("cannot open a netfilter netlink socket: " + e.getMessage());
    }
    try {
      try {
        c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, intBytes(RCVBUF), 4);
      } catch (LastErrorException e) {
        c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, intBytes(RCVBUF), 4);
      }
      // a timeout, so that the reader notices close() within it (idle: one wake-up every 10 s)
      ByteBuffer tv = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder()).putLong(10).putLong(0);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv.array(), 16);
      ByteBuffer sa = ByteBuffer.allocate(12).order(ByteOrder.nativeOrder());
      sa.putShort((short) AF_NETLINK).putShort((short) 0).putInt(0).putInt(0);
      c.bind(fd, sa.array(), 12);
      c.setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, intBytes(NFNLGRP_NFTABLES), 4);
    } catch (LastErrorException e) {
      c.close(fd);
      throw new IllegalStateException("cannot subscribe to nf_tables notifications: " + e.getMessage());
    }
    NftNotifications[] self = new NftNotifications[1];
    Thread t = new Thread(() -> self[0].loop(tables, ours, oursLow, onGeneration, onEnd), "nft-notifications");
    t.setDaemon(true);
    self[0] = new NftNotifications(c, fd);
    t.start();
    return self[0];
  }

  private static byte[] intBytes(int v) {
    return ByteBuffer.allocate(4).order(ByteOrder.nativeOrder()).putInt(v).array();
  }

  private void loop(Set<Table> tables, LongPredicate ours, IntPredicate oursLow, Consumer<Generation> onGeneration,
      Consumer<String> onEnd) {
    Memory buf = new Memory(1 << 20);
    byte[] bytes = new byte[1 << 20];
    Collector col = new Collector(tables, ours, oursLow);
    String why = null;
    while (!closed) {
      long n;
      try {
        n = libc.recv(fd, buf, buf.size(), 0);
      } catch (LastErrorException e) {
        if (e.getErrorCode() == ENOBUFS) {
          col.lost = true;
          continue;
        }
        if (e.getErrorCode() == EAGAIN || e.getErrorCode() == EINTR) {
          continue;
        }
        why = "nf_tables notifications: " + e.getMessage();
        break;
      }
      if (n <= 0) {
        continue;
      }
      buf.read(0, bytes, 0, (int) n);
      for (Generation g : col.add(bytes, (int) n)) {
        onGeneration.accept(g);
      }
    }
    libc.close(fd);
    if (!closed) {
      onEnd.accept(why);
    }
  }

  /**
   * Groups a stream of netlink datagrams into generations. Pure (no socket): the reader feeds it, the
   * unit tests feed it bytes they built.
   */
  static final class Collector {
    private final Set<Table> tables;
    private final LongPredicate ours;
    private final IntPredicate oursLow;
    private final List<Event> events = new ArrayList<>();
    boolean lost;

    Collector(Set<Table> tables, LongPredicate ours, IntPredicate oursLow) {
      this.tables = tables;
      this.ours = ours;
      this.oursLow = oursLow;
    }

    /** The generations that ended in this datagram (usually none or one). */
    List<Generation> add(byte[] buf, int n) {
      List<Generation> done = new ArrayList<>();
      ByteBuffer b = ByteBuffer.wrap(buf, 0, n).order(ByteOrder.nativeOrder());
      int off = 0;
      while (off + 20 <= n) {
        int len = b.getInt(off);
        if (len < 20 || off + len > n) {
          break;
        }
        int type = b.getShort(off + 4) & 0xffff;
        if (type >> 8 == SUBSYS_NFTABLES) {
          int msg = type & 0xff;
          int family = buf[off + 16] & 0xff;
          if (msg == 15) { // NFT_MSG_NEWGEN
            Generation g = generation(b, off + 20, off + len);
            if (g != null) {
              events.clear();
              lost = false;
              if (g.lost() || !g.events().isEmpty()) {
                done.add(g);
              }
            }
          } else if (!oursLow.test(((buf[off + 18] & 0xff) << 8) | (buf[off + 19] & 0xff))) {
            Event e = event(buf, b, msg, family, off + 20, off + len);
            if (e != null && tables.contains(new Table(family, e.table()))) {
              events.add(e);
            }
          }
        }
        off += (len + 3) & ~3;
      }
      return done;
    }

    private Generation generation(ByteBuffer b, int from, int to) {
      long id = -1;
      int pid = 0;
      String proc = "";
      for (int off = from; off + 4 <= to; ) {
        int alen = b.getShort(off) & 0xffff;
        int atype = b.getShort(off + 2) & 0x3fff;
        if (alen < 4) {
          break;
        }
        if (atype == 1 && alen >= 8) {
          id = Integer.toUnsignedLong(be32(b, off + 4));
        } else if (atype == 2 && alen >= 8) {
          pid = be32(b, off + 4);
        } else if (atype == 3) {
          proc = string(b.array(), off + 4, off + alen);
        }
        off += (alen + 3) & ~3;
      }
      if (id < 0) {
        return null;
      }
      if (ours.test(id)) {
        return new Generation(id, pid, proc, List.of(), false);
      }
      return new Generation(id, pid, proc, List.copyOf(events), lost);
    }

    private static Event event(byte[] buf, ByteBuffer b, int msg, int family, int from, int to) {
      Type type;
      boolean add;
      switch (msg) {
        case 0 -> { type = Type.TABLE; add = true; }
        case 2, 26 -> { type = Type.TABLE; add = false; }
        case 3 -> { type = Type.CHAIN; add = true; }
        case 5, 27 -> { type = Type.CHAIN; add = false; }
        case 6 -> { type = Type.RULE; add = true; }
        case 8, 28 -> { type = Type.RULE; add = false; }
        case 9 -> { type = Type.SET; add = true; }
        case 11, 29 -> { type = Type.SET; add = false; }
        case 12 -> { type = Type.ELEMENT; add = true; }
        case 14, 30 -> { type = Type.ELEMENT; add = false; }
        default -> {
          return null;
        }
      }
      String table = null;
      String name = null;
      List<String> keys = new ArrayList<>();
      // attribute 1 is the table everywhere; the name is 1 (table), 3 (chain), 2 (rule's chain, set, element's set)
      int nameAttr = switch (type) {
        case TABLE -> 1;
        case CHAIN -> 3;
        case RULE, SET, ELEMENT -> 2;
      };
      for (int off = from; off + 4 <= to; ) {
        int alen = b.getShort(off) & 0xffff;
        int atype = b.getShort(off + 2) & 0x3fff;
        if (alen < 4 || off + alen > to) {
          break;
        }
        if (atype == 1) {
          table = string(buf, off + 4, off + alen);
        }
        if (atype == nameAttr) {
          name = string(buf, off + 4, off + alen);
        }
        if (type == Type.ELEMENT && atype == 3) { // NFTA_SET_ELEM_LIST_ELEMENTS
          keys(buf, b, off + 4, off + alen, keys);
        }
        off += (alen + 3) & ~3;
      }
      if (table == null) {
        return null;
      }
      return new Event(type, add, family, table, name == null ? "" : name, keys);
    }

    /** Each NFTA_LIST_ELEM's NFTA_SET_ELEM_KEY's NFTA_DATA_VALUE. */
    private static void keys(byte[] buf, ByteBuffer b, int from, int to, List<String> out) {
      for (int off = from; off + 4 <= to; ) {
        int alen = b.getShort(off) & 0xffff;
        if (alen < 4 || off + alen > to) {
          return;
        }
        int key = find(b, off + 4, off + alen, 1); // NFTA_SET_ELEM_KEY
        if (key >= 0) {
          int klen = b.getShort(key) & 0xffff;
          int value = find(b, key + 4, key + klen, 1); // NFTA_DATA_VALUE
          if (value >= 0) {
            int vlen = b.getShort(value) & 0xffff;
            out.add(key(buf, value + 4, value + vlen));
          }
        }
        off += (alen + 3) & ~3;
      }
    }

    private static int find(ByteBuffer b, int from, int to, int want) {
      for (int off = from; off + 4 <= to; ) {
        int alen = b.getShort(off) & 0xffff;
        if (alen < 4 || off + alen > to) {
          return -1;
        }
        if ((b.getShort(off + 2) & 0x3fff) == want) {
          return off;
        }
        off += (alen + 3) & ~3;
      }
      return -1;
    }

    /** An interface name (printable, then NULs) as text, else hex. */
    static String key(byte[] buf, int from, int to) {
      int end = from;
      while (end < to && buf[end] != 0) {
        end++;
      }
      boolean text = end > from;
      for (int i = from; i < end; i++) {
        text &= buf[i] > 0x20 && buf[i] < 0x7f;
      }
      for (int i = end; i < to; i++) {
        text &= buf[i] == 0;
      }
      return text ? new String(buf, from, end - from, StandardCharsets.US_ASCII) : HexFormat.of().formatHex(buf, from, to);
    }

    private static String string(byte[] buf, int from, int to) {
      int end = from;
      while (end < to && buf[end] != 0) {
        end++;
      }
      return new String(buf, from, end - from, StandardCharsets.UTF_8);
    }

    private static int be32(ByteBuffer b, int off) {
      return ByteBuffer.wrap(b.array(), off, 4).order(ByteOrder.BIG_ENDIAN).getInt();
    }
  }

  /** Ends the subscription: the reader stops (and closes the socket) at its next wake-up, within 10 s. */
  @Override
  public void close() {
    closed = true;
  }
}
