package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.engine.Reconcile;
import ch.ungleich.uncloud.hook.engine.Timings;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook reconcile}: makes the host's rules what its running domains' metadata demands. */
@Command(
    name = "reconcile",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Rebuilds our nft state for every running domain from libvirt in ONE atomic nft transaction",
      "(table, map, each NIC's chain and map element) and removes everything stale (chains and",
      "elements of taps or domains that are gone), then rewrites the ownership records to match.",
      "Chains that are already right are not touched (their drop counters keep counting).",
      "Safe to run at any time; run it at boot after libvirtd and after a crash."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:done (or nothing to do)",
      "1:some running domain has invalid metadata: its rules were left as they were, the rest was done",
      "2:wrong command line",
      "3:libvirt or nft failed; nothing was changed",
      "4:another uncloud-hook held the host lock for longer than lock_timeout"
    })
final class ReconcileCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Option(names = "--dry-run", description = "Show what would change and the nft script; change nothing.")
  boolean dryRun;

  @Option(names = "--timings", description = "Print where the time went on stderr (one line).")
  boolean timings;

  @Spec CommandSpec spec;

  /** The {@code --json} shape. */
  record Result(
      boolean dryRun,
      boolean changed,
      int runningDomains,
      int filteredNics,
      List<ReconcilePlan.Change> changes,
      List<ReconcilePlan.Change> notes,
      List<DomainError> errors,
      List<String> warnings,
      String script) {}

  /** A running domain whose rules could not be derived. */
  record DomainError(String domain, String uuid, String error) {}

  @Override
  public Integer call() {
    Config config = common.loadConfig();
    if (!config.backend().equals("nft")) {
      throw UncloudException.invalid(
          "backend = " + config.backend() + ": reconcile manages the nft backend's rules; for nwfilter run"
              + " 'uncloud-hook sync --all'");
    }
    Timings t = timings ? new Timings() : Timings.OFF;
    if (timings) {
      long started = ProcessHandle.current().info().startInstant().map(java.time.Instant::toEpochMilli).orElse(System.currentTimeMillis());
      t.add("JVM start + config", (System.currentTimeMillis() - started) * 1_000_000L);
      t.restart();
    }
    Inventory inv;
    try (LibvirtSession s = LibvirtSession.open(common.uri())) {
      inv = Inventory.running(s, config, t);
    }
    Result result = run(inv, config, dryRun, t);
    if (timings) {
      spec.commandLine().getErr().println("reconcile timings: " + t);
    }
    PrintWriter out = spec.commandLine().getOut();
    warn(spec.commandLine().getErr(), result);
    if (common.json()) {
      Json.print(out, result);
    } else {
      print(out, result);
    }
    return result.errors().isEmpty() ? ExitCodes.OK : ExitCodes.INVALID;
  }

  /** Plans and (unless a dry run) applies for the running domains of {@code inv}. */
  static Result run(Inventory inv, Config config, boolean dryRun) {
    return run(inv, config, dryRun, Timings.OFF);
  }

  static Result run(Inventory inv, Config config, boolean dryRun, Timings t) {
    NftRunner nft = new ProcessNftRunner(config.nft());
    StateStore store = new StateStore(config.stateDir(), config.lockTimeoutSeconds());
    Reconcile r = new Reconcile(inv.desired(), nft, store, new LinuxHost()::linkMac, config.vmTaps(), t);
    t.restart();
    ReconcilePlan plan = dryRun ? r.plan() : r.apply();
    List<DomainError> errors = new ArrayList<>();
    List<String> warnings = new ArrayList<>();
    for (DomainView d : inv.running()) {
      if (d.policy() == null) {
        errors.add(new DomainError(d.name(), d.uuid(), d.error()));
      } else {
        warnings.addAll(d.policy().warnings());
      }
    }
    int nics = 0;
    for (DomainPolicy p : inv.policies()) {
      nics += (int) p.nics().stream().filter(n -> n.hasChain()).count();
    }
    return new Result(
        dryRun, !plan.isEmpty(), inv.running().size(), nics, plan.changes(), plan.notes(), errors, warnings, plan.script());
  }

  static void warn(PrintWriter err, Result r) {
    for (String w : r.warnings()) {
      err.println("uncloud-hook: warning: " + w);
    }
    for (DomainError e : r.errors()) {
      err.println("uncloud-hook: " + e.error() + " (its rules were left as they were; fix its metadata, then run reconcile)");
    }
    err.flush();
  }

  static void print(PrintWriter out, Result r) {
    String what = r.runningDomains() + " running domain" + (r.runningDomains() == 1 ? "" : "s") + ", "
        + r.filteredNics() + " filtered NIC" + (r.filteredNics() == 1 ? "" : "s");
    if (!r.changed()) {
      out.println("reconcile: nothing to change (" + what + ")");
    } else if (r.dryRun()) {
      out.println("reconcile --dry-run: would make " + r.changes().size() + " change" + (r.changes().size() == 1 ? "" : "s") + " (" + what + "):");
    } else {
      out.println("reconcile: " + r.changes().size() + " change" + (r.changes().size() == 1 ? "" : "s")
          + (r.script().isEmpty() ? "" : ", one nft transaction") + " (" + what + "):");
    }
    for (ReconcilePlan.Change c : r.changes()) {
      out.println("  " + c);
    }
    for (ReconcilePlan.Change c : r.notes()) {
      out.println("  note: " + c);
    }
    if (r.dryRun() && !r.script().isEmpty()) {
      out.println("nft script:");
      out.print(r.script());
    }
    out.flush();
  }
}
