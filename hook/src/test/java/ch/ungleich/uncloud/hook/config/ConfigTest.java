package ch.ungleich.uncloud.hook.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.VmTaps;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ConfigTest {
  @Test
  void defaults() {
    Config c = Config.defaults();
    assertEquals("nft", c.backend());
    assertEquals("deny", c.unlisted());
    assertFalse(c.linkLocalAny());
    assertTrue(c.dhcpClient());
    assertEquals("/run/uncloud-hook", c.stateDir());
    assertEquals(30, c.lockTimeoutSeconds());
    assertEquals("/usr/sbin/nft", c.nft());
  }

  @Test
  void parsesEveryKey() {
    Config c =
        Config.parse(
            "# comment\n\nbackend = nwfilter\nunlisted=mac-only\nlink_local = any\ndhcp_client = no\n"
                + "state_dir = \"/tmp/s\"\nlog_file =\nlock_timeout = 5\nnft = /usr/local/sbin/nft\n",
            "t.conf");
    assertEquals("nwfilter", c.backend());
    assertEquals("mac-only", c.unlisted());
    assertTrue(c.linkLocalAny());
    assertFalse(c.dhcpClient());
    assertEquals("/tmp/s", c.stateDir());
    assertEquals("", c.logFile());
    assertEquals(5, c.lockTimeoutSeconds());
    assertEquals("/usr/local/sbin/nft", c.nft());
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "backend = iptables", "unlisted = drop", "link_local = all", "dhcp_client = true", "state_dir = run",
        "lock_timeout = 0", "lock_timeout = x", "nft = nft", "colour = red", "just words"
      })
  void rejectsBadSettingsWithFileAndLine(String line) {
    UncloudException e = assertThrows(UncloudException.class, () -> Config.parse("\n" + line + "\n", "/etc/x.conf"));
    assertTrue(e.getMessage().startsWith("/etc/x.conf"), e.getMessage());
    assertFalse(e.getMessage().contains("\n"));
  }

  @Test
  void vmTapsDefaultListAndNone() {
    assertEquals(List.of("vnet*"), Config.defaults().vmTaps().patterns());
    assertEquals(List.of("vnet*", "tap-*", "vm0"), Config.parse("vm_taps = vnet*, tap-* ,vm0,vnet*\n", "t").vmTaps().patterns());
    assertTrue(Config.parse("vm_taps = none\n", "t").vmTaps().isOff());
    VmTaps t = VmTaps.parse("vnet*, tap-*");
    assertTrue(t.matches("vnet12") && t.matches("tap-web01") && t.matches("vnet"));
    assertFalse(t.matches("eth0") || t.matches("uplink0") || t.matches("tap0") || t.matches("xvnet0"));
    assertTrue(VmTaps.parse("vm0").matches("vm0"));
    assertFalse(VmTaps.parse("vm0").matches("vm01"));
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "*", "e*", "en*", "eth*", "br*", "vx*", "veth*", "v*", "bond*", "l*", "vnet *", "vnet*0", "*vnet", "vnet**",
        "vnet\"*", "vnet;drop*", "vnet$*", "abcdefghijklmnop", "vnet*,", ",vnet*", "", "lo", "eth0.10"
      })
  void vmTapsRefusesUplinkLikeAndHostileNames(String value) {
    UncloudException e = assertThrows(UncloudException.class, () -> Config.parse("vm_taps = " + value + "\n", "/etc/x.conf"));
    assertTrue(e.getMessage().startsWith("/etc/x.conf: vm_taps: "), e.getMessage());
    assertFalse(e.getMessage().contains("\n"));
  }

  @Test
  void etcdSettings() {
    EtcdSettings d = Config.defaults().etcd();
    assertFalse(d.etcd());
    assertEquals("distributed-firewall/vm/", d.prefix());
    assertFalse(d.vmidByName());
    assertEquals(2000, d.timeoutMillis());
    EtcdSettings e = Config.parse("source = etcd\netcd_endpoints = http://192.0.2.1:2379, https://[2001:db8::1]:2379,"
        + "https://etcd-3.example:2379\netcd_prefix = fw/vm/\netcd_vmid = name\netcd_timeout = 0.5\n"
        + "etcd_ca = /etc/etcd/ca.pem\netcd_cert = /etc/etcd/c.pem\netcd_key = /etc/etcd/c.key\n", "t.conf").etcd();
    assertTrue(e.etcd());
    assertEquals(List.of("http://192.0.2.1:2379", "https://[2001:db8::1]:2379", "https://etcd-3.example:2379"), e.endpoints());
    assertEquals("fw/vm/", e.prefix());
    assertTrue(e.vmidByName());
    assertEquals(500, e.timeoutMillis());
    assertEquals("/etc/etcd/c.key", e.key());
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "source = consul", "source = etcd", "source = etcd\netcd_endpoints = 192.0.2.1:2379",
        "etcd_endpoints = http://192.0.2.1", "etcd_endpoints = http://192.0.2.1:2379/v3", "etcd_endpoints = ftp://h:1",
        "etcd_endpoints = http://h:70000", "etcd_endpoints = http://h:1,,http://g:2", "etcd_endpoints = http://a b:1",
        "etcd_prefix =", "etcd_prefix = a b", "etcd_vmid = id", "etcd_timeout = 0", "etcd_timeout = 61",
        "etcd_timeout = 1s", "etcd_ca = ca.pem", "etcd_cert = /c.pem", "etcd_key = /k.pem",
        "etcd_endpoints = http://h:1\netcd_ca = /ca.pem"
      })
  void rejectsBadEtcdSettingsInOneLine(String text) {
    UncloudException e = assertThrows(UncloudException.class, () -> Config.parse(text + "\n", "/etc/x.conf"));
    assertTrue(e.getMessage().startsWith("/etc/x.conf"), e.getMessage());
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
  }
}
