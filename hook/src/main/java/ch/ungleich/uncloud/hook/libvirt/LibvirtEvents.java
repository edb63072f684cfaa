package ch.ungleich.uncloud.hook.libvirt;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import com.sun.jna.Pointer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.libvirt.Connect;
import org.libvirt.LibvirtException;
import org.libvirt.jna.ConnectionPointer;
import org.libvirt.jna.DomainPointer;
import org.libvirt.jna.Libvirt;

/**
 * The agent's edge to libvirt's domain events: a small JNA binding of {@code
 * virConnectDomainEventRegisterAny} for exactly the four events libvirt-java 0.5 does not expose
 * together (LIFECYCLE, DEVICE_REMOVED, DEVICE_ADDED, METADATA_CHANGE), libvirt's default event loop
 * run on one daemon thread ({@code virEventRunDefaultImpl}), keep-alive, and a close callback. Event
 * callbacks only tell the {@link Listener} which domain changed; they never call back into libvirt.
 */
public final class LibvirtEvents implements AutoCloseable {
  /** virDomainEventID. */
  static final int LIFECYCLE = 0;
  static final int DEVICE_REMOVED = 15;
  static final int DEVICE_ADDED = 19;
  static final int METADATA_CHANGE = 23;
  /** virDomainMetadataType VIR_DOMAIN_METADATA_ELEMENT. */
  private static final int METADATA_ELEMENT = 2;

  /** What a domain event was. */
  public enum Kind {
    LIFECYCLE,
    DEVICE_ADDED,
    DEVICE_REMOVED,
    METADATA_CHANGE
  }

  /** Called on the event loop thread: must return at once (mark, never work). */
  public interface Listener {
    /**
     * @param detail the device alias (device events), the metadata namespace (METADATA_CHANGE), the
     *     lifecycle event and detail numbers ("5/1")
     */
    void domainEvent(Kind kind, String uuid, String name, String detail);

    /** The connection is gone (libvirtd stopped, keep-alive timed out); {@code reason} one word. */
    void closed(String reason);
  }

  // JNA callback shapes (one method each); libvirt's C prototypes in libvirt-domain.h
  interface LifecycleCallback extends Libvirt.VirDomainEventCallback {
    int callback(ConnectionPointer c, DomainPointer d, int event, int detail, Pointer opaque);
  }

  interface DeviceCallback extends Libvirt.VirDomainEventCallback {
    void callback(ConnectionPointer c, DomainPointer d, String alias, Pointer opaque);
  }

  interface MetadataCallback extends Libvirt.VirDomainEventCallback {
    void callback(ConnectionPointer c, DomainPointer d, int type, String nsuri, Pointer opaque);
  }

  private static Thread loop;

  private final EventConnect conn;
  private final String uri;
  private final List<Integer> callbackIds = new ArrayList<>();
  // held so that JNA never frees a callback libvirt still calls
  private final LifecycleCallback lifecycle;
  private final DeviceCallback added;
  private final DeviceCallback removed;
  private final MetadataCallback metadata;
  private final org.libvirt.event.ConnectionCloseListener onClose;

  /** A {@link Connect} that hands its native pointer to this package (for the calls libvirt-java lacks). */
  private static final class EventConnect extends Connect {
    EventConnect(String uri) throws LibvirtException {
      super(uri, false);
    }

    ConnectionPointer pointer() {
      return vcp;
    }
  }

  private LibvirtEvents(EventConnect conn, String uri, Listener l) {
    this.conn = conn;
    this.uri = uri;
    this.lifecycle = (c, d, event, detail, opaque) -> {
      l.domainEvent(Kind.LIFECYCLE, uuid(d), name(d), event + "/" + detail);
      return 0;
    };
    this.added = (c, d, alias, opaque) -> l.domainEvent(Kind.DEVICE_ADDED, uuid(d), name(d), alias);
    this.removed = (c, d, alias, opaque) -> l.domainEvent(Kind.DEVICE_REMOVED, uuid(d), name(d), alias);
    this.metadata = (c, d, type, ns, opaque) -> {
      if (type == METADATA_ELEMENT) {
        l.domainEvent(Kind.METADATA_CHANGE, uuid(d), name(d), ns);
      }
    };
    this.onClose = (c, reason) -> l.closed(reason == null ? "unknown" : reason.name().toLowerCase(java.util.Locale.ROOT));
  }

  /**
   * Starts libvirt's default event loop once per process, on one daemon thread. Must run before the
   * first connection is opened (libvirt binds a connection to the event implementation at open).
   */
  public static synchronized void startLoop() {
    if (loop != null) {
      return;
    }
    try {
      if (Libvirt.INSTANCE.virEventRegisterDefaultImpl() < 0) {
        throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot start libvirt's event loop");
      }
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
      throw new UncloudException(
          ExitCodes.APPLY_FAILED, "cannot load libvirt's client library (install libvirt0): " + e.getMessage());
    }
    loop = new Thread(() -> {
      while (true) {
        // blocks in poll() until a libvirt fd or timer is due: no CPU while idle
        Libvirt.INSTANCE.virEventRunDefaultImpl();
      }
    }, "libvirt-events");
    loop.setDaemon(true);
    loop.start();
  }

  /**
   * Opens a read-write connection, keep-alive on (5 s interval, 3 missed = closed), registers the
   * four domain events for every domain and the close callback. {@link #startLoop()} first.
   */
  public static LibvirtEvents open(String uri, Listener l) {
    EventConnect c;
    try {
      LibvirtSession.quiet();
      c = new EventConnect(uri);
    } catch (LibvirtException e) {
      throw LibvirtSession.failed("cannot connect to libvirt at " + uri, e);
    }
    LibvirtEvents ev = new LibvirtEvents(c, uri, l);
    try {
      c.setKeepAlive(5, 3);
      c.registerCloseListener(ev.onClose);
      ev.register(LIFECYCLE, ev.lifecycle);
      ev.register(DEVICE_ADDED, ev.added);
      ev.register(DEVICE_REMOVED, ev.removed);
      ev.register(METADATA_CHANGE, ev.metadata);
      return ev;
    } catch (LibvirtException | UncloudException e) {
      ev.close();
      throw e instanceof LibvirtException le ? LibvirtSession.failed("cannot register for libvirt's events", le)
          : (UncloudException) e;
    }
  }

  private void register(int id, Libvirt.VirDomainEventCallback cb) {
    int r = Libvirt.INSTANCE.virConnectDomainEventRegisterAny(conn.pointer(), null, id, cb, null, null);
    if (r < 0) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "libvirt refused to register domain event " + id);
    }
    callbackIds.add(r);
  }

  /** The same connection for reading domains (libvirt connections are thread-safe). */
  public LibvirtSession session() {
    return LibvirtSession.over(conn, uri);
  }

  public String uri() {
    return uri;
  }

  /** Deregisters and closes; safe on a connection that is already broken. */
  @Override
  public void close() {
    for (int id : callbackIds) {
      Libvirt.INSTANCE.virConnectDomainEventDeregisterAny(conn.pointer(), id);
    }
    callbackIds.clear();
    try {
      conn.unregisterCloseListener();
    } catch (LibvirtException | RuntimeException ignored) {
      // none registered, or the connection is broken
    }
    try {
      conn.close();
    } catch (LibvirtException ignored) {
      // broken already
    }
  }

  private static String uuid(DomainPointer d) {
    byte[] b = new byte[37];
    if (Libvirt.INSTANCE.virDomainGetUUIDString(d, b) < 0) {
      return null;
    }
    return new String(b, 0, 36, StandardCharsets.US_ASCII);
  }

  private static String name(DomainPointer d) {
    return Libvirt.INSTANCE.virDomainGetName(d);
  }
}
