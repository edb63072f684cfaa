package ch.ungleich.uncloud.hook.nwfilter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The guard's script and the listings it reads; the real table is loaded by AgentNwfilterTest. */
class NwfilterGuardTest {
  @Test
  void scriptHoldsBeforeItBindsAndDropsEveryOtherVmTap() {
    String s = NwfilterGuard.script(List.of("vnet*", "tap-*"), Set.of("vnet1", "vnet0"), Set.of("vnet2"));
    assertEquals(List.of(
        "add table bridge uncloud_nwfilter",
        "add set bridge uncloud_nwfilter bound { type iface_index; }",
        "add set bridge uncloud_nwfilter hold { type iface_index; }",
        "add chain bridge uncloud_nwfilter guard { type filter hook prerouting priority -350; policy accept; }",
        "flush chain bridge uncloud_nwfilter guard",
        "flush set bridge uncloud_nwfilter bound",
        "flush set bridge uncloud_nwfilter hold",
        "add rule bridge uncloud_nwfilter guard meta iif @hold counter drop comment \"filterref being changed: dropped until libvirt's new rules are complete\"",
        "add rule bridge uncloud_nwfilter guard meta iif @bound accept comment \"libvirt's nwfilter rules complete: on to them\"",
        "add rule bridge uncloud_nwfilter guard iifname \"vnet*\" counter drop comment \"vm_taps: a VM tap whose filter is not in place is dropped\"",
        "add rule bridge uncloud_nwfilter guard iifname \"tap-*\" counter drop comment \"vm_taps: a VM tap whose filter is not in place is dropped\"",
        "add element bridge uncloud_nwfilter bound { \"vnet0\", \"vnet1\" }",
        "add element bridge uncloud_nwfilter hold { \"vnet2\" }"), s.lines().toList());
    assertFalse(NwfilterGuard.script(List.of("vnet*"), Set.of(), Set.of()).contains("add element"), "no empty element list");
  }

  /** nft 1.0.6's listing of the table (taken from a real one; a deleted tap's index shows as a number). */
  static final String LISTING = """
      table bridge uncloud_nwfilter {
      \tset bound {
      \t\ttype iface_index
      \t\telements = { "vnet0", 7,
      \t\t\t     "vnet3" }
      \t}

      \tset hold {
      \t\ttype iface_index
      \t}

      \tchain guard {
      \t\ttype filter hook prerouting priority -350; policy accept;
      \t\tiif @hold counter packets 0 bytes 0 drop comment "x"
      \t\tiif @bound accept comment "y"
      \t\tiifname "vnet*" counter packets 3 bytes 180 drop comment "z"
      \t}
      }
      """;

  @Test
  void readsTheSetsAndTheChain() {
    assertEquals(Set.of("vnet0", "vnet3"), NwfilterGuard.members(LISTING, "bound"));
    assertEquals(Set.of(), NwfilterGuard.members(LISTING, "hold"));
    assertTrue(NwfilterGuard.chainIntact(LISTING, List.of("vnet*")));
    assertFalse(NwfilterGuard.chainIntact(LISTING, List.of("vnet*", "tap-*")), "a pattern's drop missing");
    assertFalse(NwfilterGuard.chainIntact(LISTING.replace("iif @hold counter", "iif @other counter"), List.of("vnet*")));
  }

  /** ebtables-nft's PREROUTING as libvirt 9.0 fills it: the root jump only for a tap whose chain is linked. */
  @Test
  void linkedTapsAreThoseLibvirtJumpsToItsOwnChainFor() {
    String prerouting = """
        table bridge nat {
        \tchain PREROUTING {
        \t\ttype filter hook prerouting priority dstnat; policy accept;
        \t\tiifname "vnet0" counter packets 12 bytes 900 jump libvirt-I-vnet0
        \t\tiifname "vnet1" counter packets 0 bytes 0 jump libvirt-J-vnet1
        \t\tiifname "vnet2" counter packets 0 bytes 0 jump libvirt-I-vnet20
        \t}
        }
        """;
    assertEquals(Set.of("vnet0"), NwfilterGuard.linked(prerouting), "J is libvirt's temporary chain, vnet20 another tap's");
  }
}
