package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.InboundScript;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nwfilter.FilterRef;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook plan DOMAIN | --xml FILE}: what the hook would install; changes nothing. */
@Command(
    name = "plan",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Shows what a domain gets from its metadata: the nft script the hook applies at 'start begin'",
      "(nft backend), or the filterrefs its NICs must carry (nwfilter backend). Changes nothing.",
      "For a domain that is not running, tap names are placeholders (the NIC's name)."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:shown",
      "1:the metadata or the domain XML is invalid (the hook would refuse to start the domain)",
      "2:wrong command line",
      "3:libvirt could not be asked, no such domain, or FILE cannot be read"
    })
final class PlanCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Source source;

  static final class Source {
    @Parameters(paramLabel = "DOMAIN", description = "A domain defined in libvirt (name or UUID).")
    String domain;

    @Option(names = "--xml", paramLabel = "FILE", description = "A domain XML file instead ('-' for stdin); no libvirt needed.")
    String xml;
  }

  @Option(names = "--backend", paramLabel = "nft|nwfilter", description = "Plan for this backend instead of the configured one.")
  String backend;

  @Spec CommandSpec spec;

  /**
   * The {@code --json} shape.
   *
   * @param placeholderTaps true when the domain is not running and tap names stand for the NICs
   * @param script the nft script (nft backend), else null
   * @param filterrefs per NIC the {@code <filterref>} it must carry (nwfilter backend), else null
   */
  record Result(
      String domain,
      String uuid,
      String backend,
      boolean running,
      boolean placeholderTaps,
      List<StatusCommand.NicStatus> nics,
      List<String> warnings,
      String script,
      List<NicFilterref> filterrefs) {}

  /**
   * One NIC's filterref.
   *
   * @param filterref the element as libvirt writes it, null when the NIC carries none of ours
   */
  record NicFilterref(String name, String mac, String filterref) {}

  @Override
  public Integer call() {
    Config config = common.loadConfig();
    String be = backend != null ? backend : config.backend();
    if (!be.equals("nft") && !be.equals("nwfilter")) {
      throw new UncloudException(ExitCodes.USAGE, "--backend must be nft or nwfilter, not '" + be + "'");
    }
    DomainView view;
    if (source.xml != null) {
      String text = readXml(source.xml);
      boolean running = text.contains("<target dev=");
      view = DomainView.of(new LibvirtSession.DomainXml("(file)", "", running, text, running ? null : text), config);
    } else {
      try (LibvirtSession s = LibvirtSession.open(common.uri())) {
        view = DomainView.of(s.domain(source.domain), config);
      }
    }
    if (view.policy() == null) {
      throw UncloudException.invalid(view.error());
    }
    DomainPolicy p = view.policy();
    boolean placeholders = false;
    List<NicPolicy> nics = new ArrayList<>();
    for (NicPolicy n : p.nics()) {
      if (n.tap() == null && n.filterable()) {
        placeholders = true;
        n = n.withTap(n.name());
      }
      nics.add(n);
    }
    DomainPolicy shown = new DomainPolicy(p.name(), p.uuid(), List.copyOf(nics), p.warnings());
    String script = null;
    List<NicFilterref> filterrefs = null;
    if (be.equals("nft")) {
      ch.ungleich.uncloud.hook.state.Plan pl = NftBackend.start(shown, List.of(), t -> null, config.vmTaps().patterns());
      // then the delivery filter and security groups (issue 17), as the hook's transaction has them
      script = InboundScript.append(pl.script(), InboundScript.prelude(), InboundScript.plan(shown, pl, t -> List.of()));
    } else {
      filterrefs = new ArrayList<>();
      for (NicPolicy n : p.nics()) {
        FilterRef f = NwfilterBackend.expected(n);
        filterrefs.add(new NicFilterref(n.name(), n.mac().text(), f == null ? null : f.render("", "  ")));
      }
    }
    List<StatusCommand.NicStatus> rows =
        StatusCommand.status(
                new DomainView(view.name(), view.uuid(), view.active(), view.live(), view.config(), shown, null, null),
                ch.ungleich.uncloud.hook.nft.NftState.ABSENT)
            .nics()
            .stream()
            .map(n -> new StatusCommand.NicStatus(n.name(), n.mac(), n.tap(), n.type(), n.mode(), n.reason(), n.ipv4(), n.ipv6(), n.rules().equals("none") ? "none" : "planned", null, n.inbound()))
            .toList();
    Result r = new Result(p.name(), p.uuid(), be, view.active(), placeholders, rows, p.warnings(), script, filterrefs);
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, r);
      return ExitCodes.OK;
    }
    out.println("# plan for domain " + r.domain() + " " + r.uuid() + ", backend " + be + "; nothing was changed");
    if (placeholders) {
      out.println("# not running: tap names are placeholders (each NIC's name stands for the tap libvirt will create)");
    }
    for (StatusCommand.NicStatus n : rows) {
      List<String> allowed = new ArrayList<>(n.ipv4());
      allowed.addAll(n.ipv6());
      out.println("# " + n.name() + " " + n.mac() + " " + (n.tap() == null ? "-" : n.tap()) + ": " + n.mode() + " (" + n.reason() + ")"
          + (allowed.isEmpty() ? "" : ": " + String.join(", ", allowed))
          + (n.mode().equals("open") && !n.rules().equals("none") ? StatusCommand.GUARD_PASS : ""));
    }
    for (String w : p.warnings()) {
      out.println("# warning: " + w);
    }
    if (script != null) {
      out.print(script.isEmpty() ? "# (no rules: no NIC is filtered)\n" : script);
    }
    if (filterrefs != null) {
      for (NicFilterref f : filterrefs) {
        out.println("<!-- " + f.name() + " " + f.mac() + " -->");
        out.println(f.filterref() == null ? "<!-- no filterref of ours -->" : f.filterref());
      }
    }
    out.flush();
    return ExitCodes.OK;
  }

  private static String readXml(String file) {
    try {
      return file.equals("-")
          ? new String(System.in.readAllBytes(), StandardCharsets.UTF_8)
          : Files.readString(Path.of(file), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot read " + file + ": " + e.getMessage());
    }
  }
}
