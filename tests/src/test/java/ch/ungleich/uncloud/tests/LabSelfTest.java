package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameToolExtension;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.ReferenceRuleset;
import ch.ungleich.uncloud.tests.lab.Verdict;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The lab itself: without any filter every frame of the matrix reaches the observer byte for byte
 * (so a DROPPED verdict elsewhere means a filter dropped it), and a hand-written ruleset that
 * implements the contract gives exactly the matrix verdicts (so the matrix expectations are
 * reachable with nft 1.0.6 on this kernel).
 */
class LabSelfTest {
  @RegisterExtension static final FrameToolExtension FRAMES = new FrameToolExtension();

  @TestFactory
  Stream<DynamicTest> withoutFilterEveryFrameArrivesUnchanged() {
    List<FrameMatrix.Case> cases = FrameMatrix.cases();
    Map<String, FrameBatch.Outcome> got;
    try (NetnsLab lab = NetnsLab.create("s", 1)) {
      assertTrue(!lab.table().exists(), "fresh hv namespace has no uncloud table");
      got = FrameMatrix.send(FRAMES.tool(), lab, cases);
    }
    return FrameMatrix.verdicts(cases, got, c -> Verdict.DELIVERED, "(no nft ruleset loaded)");
  }

  /**
   * The reassembly check can tell: without a filter everything arrives complete, and with one fragment
   * withheld that datagram never reaches the observer's socket.
   */
  @org.junit.jupiter.api.Test
  void reassemblyCheckSeesCompleteAndIncompleteTraffic() {
    try (NetnsLab lab = NetnsLab.create("h", 1)) {
      ReassemblyCheck.assertComplete(ReassemblyCheck.run(FRAMES.tool(), lab, false), "(no filter)");
    }
    try (NetnsLab lab = NetnsLab.create("h", 1)) {
      ReassemblyCheck.Result r = ReassemblyCheck.run(FRAMES.tool(), lab, true);
      org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class,
          () -> ReassemblyCheck.assertComplete(r, "(one fragment withheld)"));
      org.junit.jupiter.api.Assertions.assertEquals(ReassemblyCheck.expected().size() - 1,
          r.datagrams().size(), "only the withheld one is missing: " + r.datagrams());
    }
  }

  @TestFactory
  Stream<DynamicTest> referenceRulesetGivesTheMatrixVerdicts() {
    List<FrameMatrix.Case> cases = FrameMatrix.cases();
    Map<String, FrameBatch.Outcome> got;
    String ruleset;
    try (NetnsLab lab = NetnsLab.create("s", 1)) {
      lab.nftLoad(ReferenceRuleset.render("vnet0", FrameMatrix.GUEST, FrameMatrix.domain().uuid()));
      got = FrameMatrix.send(FRAMES.tool(), lab, cases);
      ruleset = lab.ruleset();
    }
    return FrameMatrix.verdicts(cases, got, FrameMatrix.Case::expected, ruleset);
  }
}
