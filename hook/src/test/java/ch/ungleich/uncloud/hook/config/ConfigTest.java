package ch.ungleich.uncloud.hook.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
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
    assertEquals(30, c.agentResyncSeconds());
  }

  @Test
  void parsesEveryKey() {
    Config c =
        Config.parse(
            "# comment\n\nbackend = nwfilter\nunlisted=mac-only\nlink_local = any\ndhcp_client = no\n"
                + "state_dir = \"/tmp/s\"\nlog_file =\nlock_timeout = 5\nnft = /usr/local/sbin/nft\n"
                + "agent_resync = 7\n",
            "t.conf");
    assertEquals("nwfilter", c.backend());
    assertEquals("mac-only", c.unlisted());
    assertTrue(c.linkLocalAny());
    assertFalse(c.dhcpClient());
    assertEquals("/tmp/s", c.stateDir());
    assertEquals("", c.logFile());
    assertEquals(5, c.lockTimeoutSeconds());
    assertEquals("/usr/local/sbin/nft", c.nft());
    assertEquals(7, c.agentResyncSeconds());
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "backend = iptables", "unlisted = drop", "link_local = all", "dhcp_client = true", "state_dir = run",
        "lock_timeout = 0", "lock_timeout = x", "agent_resync = 0", "nft = nft", "colour = red", "just words"
      })
  void rejectsBadSettingsWithFileAndLine(String line) {
    UncloudException e = assertThrows(UncloudException.class, () -> Config.parse("\n" + line + "\n", "/etc/x.conf"));
    assertTrue(e.getMessage().startsWith("/etc/x.conf"), e.getMessage());
    assertFalse(e.getMessage().contains("\n"));
  }
}
