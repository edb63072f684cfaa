package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.nwfilter.Templates;
import ch.ungleich.uncloud.tests.lab.InstalledLauncher;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.NftTable;
import ch.ungleich.uncloud.tests.lab.PrivateLibvirtd;
import ch.ungleich.uncloud.tests.lab.Proc;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Both backends end to end with a real libvirtd from Debian's packages (private: its own network and
 * mount namespace, see {@link PrivateLibvirtd}) and real qemu domains (type qemu, no disk, no option
 * ROM: the guest sits in the BIOS). The built hook is installed as the daemon's
 * {@code /etc/libvirt/hooks/qemu} before the daemon starts, so libvirt itself calls it at every step:
 * start, save, restore, libvirtd restart (reconnect), destroy.
 */
class LibvirtE2ETest {
  static final String NS = "https://ungleich.ch/uncloud/hook/1";
  static final String MAC0 = "52:54:00:aa:bb:01";
  static final String MAC1 = "52:54:00:aa:bb:02";
  static final String DOM = "ucn-e2e";

  /** The domain with one NIC per MAC, each with {@code nicExtra} inside its {@code <interface>}. */
  static String domainXml(String nicExtra, String... macs) {
    StringBuilder nics = new StringBuilder();
    for (String mac : macs) {
      nics.append("    <interface type='bridge'>\n      <mac address='").append(mac)
          .append("'/>\n      <source bridge='br0'/>\n      <model type='virtio'/>\n      <rom enabled='no'/>\n")
          .append(nicExtra).append("    </interface>\n");
    }
    return """
        <domain type='qemu'>
          <name>%s</name>
          <uuid>75636e65-3265-4000-8000-000000000001</uuid>
          <memory unit='MiB'>32</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
        %s    <video><model type='none'/></video>
            <memballoon model='none'/>
          </devices>
        </domain>
        """.formatted(DOM, nics);
  }

  static String firewall(String... ips) {
    StringBuilder s = new StringBuilder("<firewall><interface mac=\"" + MAC0 + "\">");
    for (String ip : ips) {
      s.append("<ip address=\"").append(ip).append("\"/>");
    }
    return s.append("</interface></firewall>").toString();
  }

  /** The launcher install/ installs, with the lab's java, jar, config and spool. */
  static String launcher(NetnsLab lab) {
    return InstalledLauncher.render(NetnsLab.jar(), lab.configFile(), lab.dir());
  }

  /** The operator CLI with the lab's host settings (the backend decides what sync writes). */
  static Proc.Result cli(NetnsLab lab, String... args) {
    List<String> cmd = new ArrayList<>(List.of("env", "UNCLOUD_HOOK_CONFIG=" + lab.configFile(),
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar", NetnsLab.jar().toString()));
    cmd.addAll(List.of(args));
    return Proc.run(Duration.ofSeconds(120), null, cmd);
  }

  static long t0 = System.nanoTime();

  /** Progress on stderr with the time since the previous step (the test must stay fast on 2 cores). */
  static void step(String what) {
    long now = System.nanoTime();
    System.err.printf("e2e: %-50s +%d ms%n", what, (now - t0) / 1_000_000);
    t0 = now;
  }

  static JsonNode json(Proc.Result r) {
    try {
      return new ObjectMapper().readTree(r.out());
    } catch (IOException e) {
      throw new AssertionError("not JSON: " + r.describe(), e);
    }
  }

  static Path write(NetnsLab lab, String name, String text) {
    Path p = lab.dir().resolve(name);
    try {
      Files.writeString(p, text);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return p;
  }

  /** The domain's taps in NIC order, from libvirt. */
  static List<String> taps(PrivateLibvirtd lv, int nics) {
    List<String> taps = new ArrayList<>();
    for (String line : lv.virsh("domiflist", DOM).ok().out().strip().split("\n")) {
      String[] f = line.strip().split("\\s+");
      if (f.length >= 5 && f[0].startsWith("vnet")) {
        taps.add(f[0]);
      }
    }
    assertEquals(nics, taps.size(), "taps of " + DOM + ": " + taps);
    return taps;
  }

  static String binding(PrivateLibvirtd lv, String tap) {
    return lv.virsh("nwfilter-binding-dumpxml", tap).ok().out();
  }

  static String param(String name, String value) {
    return "<parameter name='" + name + "' value='" + value + "'/>";
  }

  // ------------------------------------------------------------------ nwfilter

  @Test
  void nwfilterBackendFollowsTheDomainThroughLibvirt() {
    NetnsLab.jar();
    try (NetnsLab lab = NetnsLab.create("e", 0)) {
      lab.config("backend = nwfilter");
      try (PrivateLibvirtd lv = PrivateLibvirtd.start(lab.hv(), NetnsLab.PREFIX, launcher(lab))) {
        String uri = lv.uri();
        Proc.Result install = cli(lab, "nwfilter", "install", "--connect", uri).ok();
        step("libvirtd up, nwfilter install (twice)");
        assertEquals(Templates.all().size(), install.out().lines().filter(l -> l.startsWith("defined uncloud-")).count(), install.out());
        JsonNode again = json(cli(lab, "nwfilter", "install", "--connect", uri, "--json").ok());
        assertEquals(Templates.all().size(), again.path("filters").size(), again.toString());
        again.path("filters").forEach(f -> assertEquals("unchanged", f.path("result").asText(), again.toString()));

        // one NIC: libvirt's nwfilter instantiation is slow (one ebtables process per rule), and the
        // frame test covers the other filters
        lv.virsh("define", write(lab, "dom.xml", domainXml("", MAC0)).toString()).ok();
        // no filterrefs yet: the hook's prepare refuses, libvirt shows its line
        Proc.Result refused = lv.virsh("start", DOM);
        step("define, start refused by prepare");
        assertNotEquals(0, refused.exit());
        assertTrue(refused.err().contains("filterrefs disagree with the metadata")
            && refused.err().contains("uncloud-hook sync " + DOM), refused.describe());

        lv.virsh("metadata", DOM, "--uri", NS, "--key", "uc", "--config", "--set",
            firewall("192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64")).ok();
        Proc.Result dry = cli(lab, "sync", DOM, "--dry-run", "--connect", uri).ok();
        assertTrue(dry.out().contains("would change") && dry.out().contains("+      <filterref filter='uncloud-clean-traffic'>"),
            dry.out());
        assertFalse(lv.virsh("dumpxml", "--inactive", DOM).ok().out().contains("<filterref"), "dry run changed nothing");
        Proc.Result sync = cli(lab, "sync", DOM, "--connect", uri).ok();
        step("metadata, sync --dry-run, sync, sync --all");
        assertEquals(1, sync.out().lines().filter(l -> l.contains(" config ") && l.contains("changed:")).count(),
            sync.out());
        assertEquals(DOM + ": in sync\n", cli(lab, "sync", "--all", "--connect", uri).ok().out());

        lv.virsh("start", DOM).ok();
        step("start");
        List<String> taps = taps(lv, 1);
        String b0 = binding(lv, taps.get(0));
        assertTrue(b0.contains("filter='uncloud-clean-traffic'") && b0.contains(param("IPV4", "192.0.2.10"))
            && b0.contains(param("IPV6", "2001:db8:1234::")) && b0.contains(param("IPV6_PREFIX", "64"))
            && b0.contains(param("MAC", MAC0)), b0);
        assertTrue(rules(lab, taps.get(0)).contains("ip saddr 192.0.2.10 "), rules(lab, taps.get(0)));
        assertTrue(rules(lab, taps.get(0)).contains("ip6 saddr 2001:db8:1234::/64 "), rules(lab, taps.get(0)));

        // a running VM gets a new address: sync updates the persistent and the live definition at once
        lv.virsh("metadata", DOM, "--uri", NS, "--key", "uc", "--live", "--config", "--set",
            firewall("192.0.2.10", "198.51.100.7", "2001:db8:0:1::10", "2001:db8:1234::/64")).ok();
        JsonNode live = json(cli(lab, "sync", DOM, "--connect", uri, "--json").ok());
        step("live metadata change, sync (config + live)");
        JsonNode changes = live.path("domains").path(0).path("changes");
        assertEquals(2, changes.size(), live.toString());
        assertEquals("config", changes.path(0).path("where").asText(), live.toString());
        assertEquals("live", changes.path(1).path("where").asText(), live.toString());
        assertTrue(live.path("domains").path(0).path("changed").asBoolean(), live.toString());
        assertTrue(binding(lv, taps.get(0)).contains(param("IPV4", "198.51.100.7")), binding(lv, taps.get(0)));
        assertTrue(rules(lab, taps.get(0)).contains("ip saddr 198.51.100.7 "), rules(lab, taps.get(0)));

        // save, change the metadata in the saved image, restore: the hook's restore begin rewrites the
        // filterrefs and libvirt takes that XML (its ABI check passes)
        Path image = lab.dir().resolve("dom.save");
        lv.virsh("save", DOM, image.toString()).ok();
        step("save");
        assertFalse(lv.virsh("nwfilter-binding-list").ok().out().contains("vnet"), "bindings gone with the VM");
        String saved = lv.virsh("save-image-dumpxml", image.toString()).ok().out();
        assertTrue(saved.contains("198.51.100.7"), saved);
        lv.virsh("save-image-define", image.toString(),
            write(lab, "saved.xml", saved.replace("\"198.51.100.7\"", "\"198.51.100.8\"")).toString()).ok();
        lv.virsh("restore", image.toString()).ok();
        step("restore");
        taps = taps(lv, 1);
        b0 = binding(lv, taps.get(0));
        assertTrue(b0.contains(param("IPV4", "198.51.100.8")) && !b0.contains("198.51.100.7"), b0);
        assertTrue(lv.virsh("dumpxml", DOM).ok().out().contains(param("IPV4", "198.51.100.8")));
        assertTrue(rules(lab, taps.get(0)).contains("ip saddr 198.51.100.8 "), rules(lab, taps.get(0)));

        // libvirtd restart with libvirt's rules gone meanwhile: libvirt re-instantiates the filters
        // (reconnect), the hook only checks
        lab.nft("delete", "table", "bridge", "nat").ok();
        lv.restart();
        step("libvirtd restart (reconnect)");
        assertEquals("running", lv.virsh("domstate", DOM).ok().out().strip());
        String list = lv.virsh("nwfilter-binding-list").ok().out();
        assertTrue(list.contains(taps.get(0)), list);
        assertTrue(rules(lab, taps.get(0)).contains("ip saddr 198.51.100.8 "), rules(lab, taps.get(0)));

        lv.virsh("destroy", DOM).ok();
        step("destroy");
        assertFalse(lv.virsh("nwfilter-binding-list").ok().out().contains("vnet"), "bindings gone after destroy");
        assertFalse(lab.nft("list", "ruleset").ok().out().contains("libvirt-I-vnet"), lab.ruleset());
        // nwfilter mode never wrote nft rules of its own
        assertFalse(lab.table().exists(), "table bridge uncloud in nwfilter mode:\n" + lab.ruleset());
        String log = lab.hookLog();
        assertTrue(log.contains("restore begin: rewrote filterrefs"), log);
        // the one error is the refused start before sync
        assertEquals(1, log.lines().filter(l -> l.contains(" error ")).count(), log);
      }
    }
  }

  /** libvirt's ebtables-nft rules for a tap (its chains in {@code table bridge nat}). */
  static String rules(NetnsLab lab, String tap) {
    return lab.nft("list", "table", "bridge", "nat").ok().out().lines()
        .filter(l -> l.contains("I-" + tap + "-") || l.contains("saddr")).reduce("", (a, b) -> a + b + "\n");
  }

  // ------------------------------------------------------------------ nft

  @Test
  void nftBackendFollowsTheDomainThroughLibvirt() {
    NetnsLab.jar();
    try (NetnsLab lab = NetnsLab.create("d", 0)) {
      lab.config("backend = nft");
      try (PrivateLibvirtd lv = PrivateLibvirtd.start(lab.hv(), NetnsLab.PREFIX, launcher(lab))) {
        String uri = lv.uri();
        // a definition that carries our filterrefs (say, from an nwfilter host): nft mode does not use
        // them, and sync removes them
        String withRefs = domainXml("      <filterref filter='uncloud-clean-traffic-no-dhcp'>\n"
            + "        <parameter name='IPV4' value='0.0.0.0'/>\n      </filterref>\n", MAC0, MAC1);
        lv.virsh("define", write(lab, "dom.xml", withRefs).toString()).ok();
        lv.virsh("metadata", DOM, "--uri", NS, "--key", "uc", "--config", "--set",
            firewall("192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64")).ok();
        Proc.Result sync = cli(lab, "sync", DOM, "--connect", uri).ok();
        assertTrue(sync.out().contains("backend = nft"), sync.out());
        assertFalse(lv.virsh("dumpxml", "--inactive", DOM).ok().out().contains("<filterref"), "sync removed them");

        lv.virsh("start", DOM).ok();
        step("start");
        List<String> taps = taps(lv, 2);
        assertPorts(lab, taps);

        lv.virsh("save", DOM, lab.dir().resolve("dom.save").toString()).ok();
        step("save");
        assertTrue(lab.table().ports().isEmpty(), "ports after save: " + lab.table().ports());
        lv.virsh("restore", lab.dir().resolve("dom.save").toString()).ok();
        step("restore");
        taps = taps(lv, 2);
        assertPorts(lab, taps);

        // libvirtd restart with our table gone meanwhile: reconnect puts the rules back
        lab.nft("delete", "table", "bridge", "uncloud").ok();
        lv.restart();
        step("libvirtd restart (reconnect)");
        assertEquals("running", lv.virsh("domstate", DOM).ok().out().strip());
        assertPorts(lab, taps);

        lv.virsh("destroy", DOM).ok();
        step("destroy");
        NftTable t = lab.table();
        assertTrue(t.ports().isEmpty(), "ports after destroy: " + t.ports());
        for (String tap : taps) {
          assertFalse(t.chains().containsKey("port-" + tap), "chain of " + tap + " after destroy");
        }
        assertFalse(lv.virsh("nwfilter-binding-list").ok().out().contains("vnet"), "no nwfilter in nft mode");
      }
    }
  }

  /** Both NICs' real taps are in our map, the first with the metadata's addresses. */
  static void assertPorts(NetnsLab lab, List<String> taps) {
    NftTable t = lab.table();
    for (String tap : taps) {
      assertTrue(t.port(tap).isPresent(), tap + " not in map ports: " + t.ports().keySet());
    }
    String chain = lab.nft("list", "chain", "bridge", "uncloud", "port-" + taps.get(0)).ok().out();
    assertTrue(chain.contains("192.0.2.10") && chain.contains("2001:db8:1234::/64")
        && chain.contains("ether saddr != " + MAC0), chain);
    String other = lab.nft("list", "chain", "bridge", "uncloud", "port-" + taps.get(1)).ok().out();
    assertTrue(other.contains("ether saddr != " + MAC1) && !other.contains("192.0.2.10"), other);
  }
}
