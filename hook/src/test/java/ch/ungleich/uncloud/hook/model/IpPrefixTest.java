package ch.ungleich.uncloud.hook.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class IpPrefixTest {

  @ParameterizedTest
  @CsvSource({
    "192.0.2.10, 192.0.2.10, false, 32",
    "198.51.100.0/24, 198.51.100.0/24, false, 24",
    "' 203.0.113.7 ', 203.0.113.7, false, 32",
    "2001:db8:0:1::10, 2001:db8:0:1::10, true, 128",
    "2001:DB8:1234::/64, 2001:db8:1234::/64, true, 64",
    "2001:db8:0:0:0:0:0:1, 2001:db8::1, true, 128",
    "fe80::5054:ff:feaa:bb01, fe80::5054:ff:feaa:bb01, true, 128",
    "2001:db8::1:0:0:1, 2001:db8::1:0:0:1, true, 128",
    "2001:0:0:1::1, 2001:0:0:1::1, true, 128",
    "0.0.0.0/0, 0.0.0.0/0, false, 0",
  })
  void parsesLiterals(String in, String out, boolean v6, int len) {
    IpPrefix p = IpPrefix.parse(in);
    assertEquals(out, p.toString());
    assertEquals(v6, p.v6());
    assertEquals(len, p.length());
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "", "localhost", "example.org", "192.0.2", "192.0.2.256", "192.0.2.010", "0x7f.0.0.1", "1.2.3.4.5",
        "192.0.2.1/33", "192.0.2.1/-1", "192.0.2.1/", "192.0.2.1/08", "2001:db8::/129", "2001:db8:::1",
        "2001:db8::g", "fe80::1%eth0", "192.0.2.1 198.51.100.1", "::ffff:192.0.2.1"
      })
  void rejectsAnythingButALiteral(String in) {
    UncloudException e = assertThrows(UncloudException.class, () -> IpPrefix.parse(in));
    assertFalse(e.getMessage().contains("\n"));
  }

  @Test
  void hostBitsAreAnErrorThatNamesTheNetwork() {
    UncloudException e = assertThrows(UncloudException.class, () -> IpPrefix.parse("192.0.2.1/24"));
    assertTrue(e.getMessage().contains("the network is 192.0.2.0/24"), e.getMessage());
    e = assertThrows(UncloudException.class, () -> IpPrefix.parse("2001:db8:1234::1/64"));
    assertTrue(e.getMessage().contains("2001:db8:1234::/64"), e.getMessage());
  }

  @Test
  void overlapAndContainment() {
    IpPrefix net = IpPrefix.parse("2001:db8:1234::/64");
    assertTrue(net.contains(IpPrefix.parse("2001:db8:1234::5")));
    assertTrue(net.overlaps(IpPrefix.parse("2001:db8:1234::/48")));
    assertFalse(net.overlaps(IpPrefix.parse("2001:db8:1235::/64")));
    assertFalse(IpPrefix.parse("0.0.0.0/0").overlaps(IpPrefix.parse("::/0")));
  }

  @Test
  void macDerivesModifiedEui64() {
    assertEquals("fe80::5054:ff:feaa:bb01", Mac.parse("52:54:00:AA:BB:01").eui64LinkLocal().toString());
    assertEquals("fe80::ff:fe00:1", Mac.parse("02:00:00:00:00:01").eui64LinkLocal().toString());
    assertThrows(UncloudException.class, () -> Mac.parse("01:00:5e:00:00:01"));
    assertThrows(UncloudException.class, () -> Mac.parse("52:54:00:aa:bb"));
    assertThrows(UncloudException.class, () -> Mac.parse("52-54-00-aa-bb-01"));
  }

  @Test
  void addressSetMergesAndRendersCidrRangesAndHex() {
    AddressSet s =
        AddressSet.of(
            false,
            List.of(
                IpPrefix.parse("192.0.2.10"),
                IpPrefix.parse("192.0.2.0/25"),
                IpPrefix.parse("192.0.2.128/25"),
                IpPrefix.parse("198.51.100.1"),
                IpPrefix.parse("198.51.100.2"),
                IpPrefix.parse("2001:db8::1")));
    assertEquals(List.of("192.0.2.0/24", "198.51.100.1-198.51.100.2"), s.elements());
    AddressSet v6 = AddressSet.of(true, List.of(IpPrefix.parse("2001:db8::1"), IpPrefix.parse("fe80::/64")));
    assertEquals(
        List.of(
            "0x20010db8000000000000000000000001",
            "0xfe800000000000000000000000000000-0xfe80000000000000ffffffffffffffff"),
        v6.hexElements());
    assertTrue(AddressSet.of(false, List.of()).isEmpty());
  }
}
