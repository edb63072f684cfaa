package ch.ungleich.uncloud.hook.libvirt;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.util.ArrayList;
import java.util.List;
import org.libvirt.Connect;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.libvirt.NetworkFilter;
import org.libvirt.jna.Libvirt;
import org.libvirt.jna.virError;
import com.sun.jna.Pointer;

/**
 * The CLI's edge to libvirt (libvirt-java over JNA). Never used by the hook: "a hook script must not
 * call back into libvirt" (libvirt docs/hooks.rst), a deadlock is likely. Every libvirt error becomes
 * an {@link UncloudException} with {@code APPLY_FAILED} and libvirt's message on one line.
 */
public final class LibvirtSession implements AutoCloseable {
  /** virDomainXMLFlags: VIR_DOMAIN_XML_INACTIVE. */
  public static final int XML_INACTIVE = 2;
  /** virDomainModificationImpact. */
  public static final int AFFECT_LIVE = 1;
  public static final int AFFECT_CONFIG = 2;
  /** virDomainMetadataType: VIR_DOMAIN_METADATA_ELEMENT. */
  private static final int METADATA_ELEMENT = 2;
  /** virConnectListAllDomainsFlags: VIR_CONNECT_LIST_DOMAINS_ACTIVE. */
  private static final int LIST_ACTIVE = 1;

  private final Connect conn;
  private final String uri;

  private LibvirtSession(Connect conn, String uri) {
    this.conn = conn;
    this.uri = uri;
  }

  /**
   * libvirt prints every error to stderr unless an error function is set; ours arrive as exceptions
   * and become one line each. Held here so JNA's callback is never garbage-collected.
   */
  private static final Libvirt.VirErrorCallback QUIET =
      new Libvirt.VirErrorCallback() {
        @Override
        public void errorCallback(Pointer userData, virError error) {
          // reported through LibvirtException
        }
      };

  /** Opens a read-write connection; {@code qemu:///system} unless told otherwise. */
  public static LibvirtSession open(String uri) {
    try {
      quiet();
      return new LibvirtSession(new Connect(uri, false), uri);
    } catch (LibvirtException e) {
      throw failed("cannot connect to libvirt at " + uri, e);
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
      throw new UncloudException(
          ExitCodes.APPLY_FAILED, "cannot load libvirt's client library (install libvirt0): " + e.getMessage());
    }
  }

  /** Silences libvirt's own stderr printing of errors (they arrive as exceptions). */
  static void quiet() throws LibvirtException {
    Connect.setErrorCallback(QUIET);
  }

  /** A session over a connection opened elsewhere in this package ({@link LibvirtEvents}); its owner closes it. */
  static LibvirtSession over(Connect conn, String uri) {
    return new LibvirtSession(conn, uri);
  }

  public String uri() {
    return uri;
  }

  /** The libvirt version of the daemon at the other end, e.g. {@code 9.0.0}. */
  public String daemonVersion() {
    try {
      long v = conn.getLibVersion();
      return (v / 1_000_000) + "." + (v / 1000 % 1000) + "." + (v % 1000);
    } catch (LibvirtException e) {
      throw failed("cannot ask libvirt for its version", e);
    }
  }

  /** A domain as the CLI sees it: name, UUID, whether it runs, its live and persistent XML. */
  public record DomainXml(String name, String uuid, boolean active, String liveXml, String configXml) {}

  /** Every domain, running or defined; {@code configXml} is null for a transient domain. */
  public List<DomainXml> domains(boolean activeOnly) {
    return domains(activeOnly, true);
  }

  /**
   * The domains, without their persistent XML when {@code withConfig} is false (reconcile needs only
   * the live XML of running domains: half the calls and parses at 1000 domains).
   */
  public List<DomainXml> domains(boolean activeOnly, boolean withConfig) {
    try {
      // a libvirt connection serves calls from many threads: at 1000 domains the XML is read on every core
      return new ArrayList<>(
          java.util.Arrays.stream(conn.listAllDomains(activeOnly ? LIST_ACTIVE : 0)).parallel()
              .map(d -> describe(d, withConfig)).toList());
    } catch (LibvirtException e) {
      throw failed("cannot list domains", e);
    }
  }

  /**
   * A running or defined domain by UUID with its live XML only (the agent's per-domain re-read), null
   * when libvirt has no such domain (undefined meanwhile).
   */
  public DomainXml findLive(String uuid) {
    Domain d;
    try {
      d = conn.domainLookupByUUIDString(uuid);
    } catch (LibvirtException e) {
      if (e.getError() != null && e.getError().getCode() != null
          && e.getError().getCode().name().equals("VIR_ERR_NO_DOMAIN")) {
        return null;
      }
      throw failed("cannot look up domain " + uuid, e);
    }
    return describe(d, false);
  }

  /** One domain by name or UUID. */
  public DomainXml domain(String nameOrUuid) {
    return describe(lookup(nameOrUuid), true);
  }

  /** Our metadata element of a domain, or null; {@code config} picks the persistent definition. */
  public String metadata(String nameOrUuid, String namespace, boolean config) {
    try {
      return lookup(nameOrUuid).getMetadata(METADATA_ELEMENT, namespace, config ? AFFECT_CONFIG : AFFECT_LIVE);
    } catch (LibvirtException e) {
      if (e.getError() != null && e.getError().getCode() != null
          && e.getError().getCode().name().equals("VIR_ERR_NO_DOMAIN_METADATA")) {
        return null;
      }
      throw failed("cannot read metadata of " + nameOrUuid, e);
    }
  }

  /** Writes (or with null, removes) our metadata element under {@code key:}. */
  public void setMetadata(String nameOrUuid, String namespace, String key, String xml, int flags) {
    try {
      lookup(nameOrUuid).setMetadata(METADATA_ELEMENT, xml, key, namespace, flags);
    } catch (LibvirtException e) {
      throw failed("cannot write metadata of " + nameOrUuid, e);
    }
  }

  /** virDomainUpdateDeviceFlags: replaces a device (matched by MAC for NICs). */
  public void updateDevice(String nameOrUuid, String deviceXml, int flags) {
    try {
      lookup(nameOrUuid).updateDeviceFlags(deviceXml, flags);
    } catch (LibvirtException e) {
      throw failed("cannot update a device of " + nameOrUuid, e);
    }
  }

  /** Redefines a persistent domain from XML. */
  public void define(String xml) {
    try {
      conn.domainDefineXML(xml).free();
    } catch (LibvirtException e) {
      throw failed("cannot define domain", e);
    }
  }

  /** The XML of a defined nwfilter, or null when there is none by that name. */
  public String filterXml(String name) {
    try {
      for (String n : conn.listNetworkFilters()) {
        if (n.equals(name)) {
          NetworkFilter f = conn.networkFilterLookupByName(name);
          try {
            return f.getXMLDesc();
          } finally {
            f.free();
          }
        }
      }
      return null;
    } catch (LibvirtException e) {
      throw failed("cannot read nwfilter " + name, e);
    }
  }

  /** Defines or redefines an nwfilter. */
  public void defineFilter(String xml) {
    try {
      conn.networkFilterDefineXML(xml).free();
    } catch (LibvirtException e) {
      throw failed("cannot define nwfilter", e);
    }
  }

  @Override
  public void close() {
    try {
      conn.close();
    } catch (LibvirtException ignored) {
      // closing a broken connection: nothing left to do
    }
  }

  private Domain lookup(String nameOrUuid) {
    try {
      if (nameOrUuid.matches("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")) {
        return conn.domainLookupByUUIDString(nameOrUuid);
      }
      return conn.domainLookupByName(nameOrUuid);
    } catch (LibvirtException e) {
      throw failed("no domain '" + nameOrUuid + "'", e);
    }
  }

  private static DomainXml describe(Domain d, boolean withConfig) {
    try {
      boolean active = d.isActive() == 1;
      String live = d.getXMLDesc(0);
      String config = withConfig && d.isPersistent() == 1 ? d.getXMLDesc(XML_INACTIVE) : null;
      return new DomainXml(d.getName(), d.getUUIDString(), active, live, config);
    } catch (LibvirtException e) {
      throw failed("cannot read a domain's XML", e);
    }
  }

  static UncloudException failed(String what, LibvirtException e) {
    String m = e.getMessage() == null ? e.toString() : e.getMessage();
    return new UncloudException(ExitCodes.APPLY_FAILED, what + ": " + m.replaceAll("\\s+", " ").strip(), e);
  }
}
