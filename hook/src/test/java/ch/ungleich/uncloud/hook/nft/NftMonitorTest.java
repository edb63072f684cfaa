package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class NftMonitorTest {
  @Test
  void removalsFromOurTableAreLosses() {
    assertEquals(NftMonitor.Loss.TABLE,
        NftMonitor.classify("{\"delete\": {\"table\": {\"family\": \"bridge\", \"name\": \"uncloud\", \"handle\": 1}}}"));
    assertEquals(NftMonitor.Loss.PART, NftMonitor.classify(
        "{\"delete\": {\"chain\": {\"family\": \"bridge\", \"table\": \"uncloud\", \"name\": \"port-vnet0\", \"handle\": 4}}}"));
    assertEquals(NftMonitor.Loss.PART, NftMonitor.classify(
        "{\"delete\": {\"element\": {\"family\": \"bridge\", \"table\": \"uncloud\", \"name\": \"ports\", \"elem\": {\"set\": [\"vnet0\"]}}}}"));
    assertEquals(NftMonitor.Loss.PART, NftMonitor.classify(
        "{\"delete\": {\"rule\": {\"family\": \"bridge\", \"table\": \"uncloud\", \"chain\": \"filter-prerouting\", \"handle\": 9}}}"));
  }

  @Test
  void additionsAndOtherTablesAreNot() {
    assertNull(NftMonitor.classify("{\"add\": {\"table\": {\"family\": \"bridge\", \"name\": \"uncloud\", \"handle\": 1}}}"));
    assertNull(NftMonitor.classify("{\"delete\": {\"table\": {\"family\": \"inet\", \"name\": \"uncloud\", \"handle\": 1}}}"));
    assertNull(NftMonitor.classify("{\"delete\": {\"chain\": {\"family\": \"bridge\", \"table\": \"filter\", \"name\": \"uncloud\"}}}"));
    assertNull(NftMonitor.classify("# new generation 5 by process 77 (nft)"));
    assertNull(NftMonitor.classify("{not json uncloud"));
  }
}
