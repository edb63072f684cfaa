package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * {@link MigrationSuite} with {@code backend = nwfilter}: our filters defined by {@code uncloud-hook
 * nwfilter install} on both hosts, the guest's filterrefs written by {@code uncloud-hook sync} on A.
 * libvirt instantiates the filters (the destination's migrate call rewrites the filterrefs of the
 * incoming XML when the metadata changed); the source keeps no nwfilter binding of the domain.
 */
class MigrationNwfilterTest extends MigrationSuite {
  @Override
  String backend() {
    return "nwfilter";
  }

  @Override
  String prefix() {
    return "ucw";
  }

  /** The same inbound rules as the nft suite: libvirt's stateful filters enforce them (issue 17). */
  @Override
  String ingress() {
    return INGRESS;
  }

  @Override
  void afterStart() {
    for (LibvirtHost h : List.of(lab.a(), lab.b())) {
      Cmd.Result r = cli(h, "nwfilter", "install", "--connect", h.uri());
      report("%s nwfilter install: %s", h.name(), r.out().strip().replace('\n', ' '));
    }
  }

  /** Define (not start) with the metadata, sync writes the filterrefs, then start. */
  @Override
  void boot() throws IOException {
    Path xml = lab.dir().resolve(guest.name() + ".xml");
    Files.writeString(xml, guest.domainXml(lab.image(), TwoHostLab.BRIDGE, lab.console(guest), fullMetadata()));
    lab.a().virsh("define", xml.toString()).check();
    lab.a().saveQemuCaps();
    lab.b().seedQemuCaps();
    Cmd.Result sync = cli(lab.a(), "sync", guest.name(), "--connect", lab.a().uri());
    report("sync on A: %s", sync.out().strip());
    String def = lab.a().virsh("dumpxml", "--inactive", guest.name()).check().out();
    assertTrue(def.contains("uncloud-clean-traffic-in"), "sync wrote our filterref with the inbound rules: " + def);
    lab.a().virsh("start", guest.name()).check();
  }

  /** libvirt's binding of our filter (with the inbound rules) on the guest's tap, and our filterref in the live XML. */
  @Override
  void assertProtected(LibvirtHost h) {
    String tap = tap(h);
    String list = h.virsh("nwfilter-binding-list").check().out();
    assertTrue(list.lines().anyMatch(l -> l.contains(tap) && l.contains("uncloud-clean-traffic-in")),
        h.name() + ": binding of uncloud-clean-traffic-in on " + tap + ": " + list);
    String live = h.virsh("dumpxml", guest.name()).check().out();
    assertTrue(live.contains("uncloud-clean-traffic"), h.name() + ": the live XML has our filterref: " + live);
  }

  @Override
  void assertNothingLeft(LibvirtHost h, String what) {
    String left = h.virsh("nwfilter-binding-list").check().out();
    assertFalse(left.contains("vnet"), what + ": no nwfilter binding left: " + left);
  }

  /** The comparison runs without filtering: the migrated XML loses its filterref (virsh migrate --xml). */
  @Override
  String[] unfilteredMigrationArgs(LibvirtHost from) {
    String xml = from.virsh("dumpxml", "--migratable", guest.name()).check().out()
        .replaceAll("(?s)<filterref .*?</filterref>", "").replaceAll("<filterref [^>]*/>", "");
    Path f = lab.dir().resolve("unfiltered-" + from.name() + ".xml");
    try {
      Files.writeString(f, xml);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return new String[] {"--xml", f.toString()};
  }

  /**
   * The guest's IPv6 removed from the metadata on A, no sync: A keeps the old filterref; B's migrate
   * begin hands libvirt the XML with the filterref the new metadata asks for. Then the full metadata
   * again (no sync either): the next migration's destination rewrites the filterref back.
   */
  @Override
  void changeMetadataAndMigrate() {
    migrateWithMetadataWithoutIpv6("<firewall><interface mac=\"" + guest.mac() + "\"><ip address=\"" + guest.ip4Address()
        + "\"/><ip address=\"2001:db8:1234::/64\"/>" + ingress().replace("uc:", "") + "</interface></firewall>",
        "after removing the IPv6 from the metadata (no sync)");
    assertTrue(hookLog(lab.b()).contains("migrate begin: rewrote filterrefs"),
        "B's migrate hook rewrote the filterrefs: " + hookLog(lab.b()));
    String live = lab.b().virsh("dumpxml", guest.name()).check().out();
    String ref = live.substring(live.indexOf("<filterref"), live.indexOf("</filterref>"));
    assertFalse(ref.contains(guest.ip6Address()), "B's live filterref no longer lists the IPv6: " + ref);
    restoreFullMetadata(lab.b());
  }
}
