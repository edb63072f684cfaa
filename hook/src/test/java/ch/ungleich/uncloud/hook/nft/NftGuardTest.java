package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** When a call that sees only some domains may add the vm_taps guard. */
class NftGuardTest {
  static final List<String> WANT = List.of("vnet*", "tap-*");
  static final Supplier<Set<String>> NOT_ASKED = () -> {
    throw new AssertionError("the map was listed although nothing needed it");
  };

  @Test
  void installedPatternsStayAndNewOnesNeedEveryMatchingPortKnown() {
    NftGuard.Decision d = NftGuard.decide(WANT, List.of("vnet*"), List.of("lo", "eth0", "vnet0", "vnet1", "tap-a"),
        Set.of("vnet0"), Set.of(), () -> Set.of());
    assertEquals(List.of("vnet*"), d.patterns());
    assertEquals(Map.of("tap-*", List.of("tap-a")), d.withheld());
    assertTrue(d.note().startsWith("vm_taps guard 'tap-*' (tap-a) not added"), d.note());
  }

  @Test
  void aPortWithAnElementIsKnownUnlessThisCallRemovesIt() {
    List<String> links = List.of("lo", "vnet0", "vnet1", "vnet2");
    NftGuard.Decision ok = NftGuard.decide(WANT, List.of(), links, Set.of("vnet0"), Set.of(), () -> Set.of("vnet1", "vnet2"));
    assertEquals(WANT, ok.patterns());
    assertNull(ok.note());
    NftGuard.Decision no = NftGuard.decide(WANT, List.of(), links, Set.of("vnet0"), Set.of("vnet2"), () -> Set.of("vnet1", "vnet2"));
    assertEquals(List.of("tap-*"), no.patterns());
    assertEquals(Map.of("vnet*", List.of("vnet2")), no.withheld());
  }

  @Test
  void onlyThisCallsTapsOnTheHostNeedsNoListing() {
    NftGuard.Decision d = NftGuard.decide(WANT, List.of(), List.of("lo", "eth0", "br0", "vnet0"), Set.of("vnet0"), Set.of(), NOT_ASKED);
    assertEquals(WANT, d.patterns());
  }

  @Test
  void unknownInterfacesAddNothingNew() {
    NftGuard.Decision d = NftGuard.decide(WANT, List.of("tap-*"), List.of(), Set.of(), Set.of(), NOT_ASKED);
    assertEquals(List.of("tap-*"), d.patterns());
    assertEquals(Set.of("vnet*"), d.withheld().keySet());
  }

  @Test
  void readsNftsTextListings() {
    String chain = "table bridge uncloud {\n\tchain filter-prerouting {\n"
        + "\t\ttype filter hook prerouting priority dstnat; policy accept;\n"
        + "\t\tiifname vmap @ports comment \"ports not in the map (uplinks, host) are not filtered\"\n"
        + "\t\tiifname \"vnet*\" counter packets 0 bytes 0 drop comment \"vm_taps: x\"\n"
        + "\t\tiifname \"tap-x\" counter packets 12 bytes 900 drop comment \"vm_taps: x\"\n\t}\n}\n";
    assertEquals(List.of("vnet*", "tap-x"), NftGuard.installed(chain));
    String map = "table bridge uncloud {\n\tmap ports {\n\t\ttype ifname : verdict\n\t\tcomment \"VM tap -> its chain\"\n"
        + "\t\telements = { \"vnet0\" comment \"a 6d696776-6d31-4000-8000-00000000000a 52:54:00:00:00:0a\" : jump port-vnet0,\n"
        + "\t\t\t     \"vnet1\" : jump port-vnet1 }\n\t}\n}\n";
    assertEquals(Set.of("vnet0", "vnet1"), NftGuard.elements(map));
    assertEquals(List.of(), NftGuard.installed("table bridge uncloud {\n\tchain filter-prerouting {\n\t}\n}\n"));
  }
}
