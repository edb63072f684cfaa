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
