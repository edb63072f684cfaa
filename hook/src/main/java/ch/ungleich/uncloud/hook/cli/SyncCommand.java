package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import ch.ungleich.uncloud.hook.nwfilter.SyncPlan;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code uncloud-hook sync}: writes the filterrefs the metadata asks for into the persistent definition
 * and, for a running domain, into the live one ({@code virDomainUpdateDeviceFlags}, so libvirt
 * re-instantiates the filter on the tap at once). With {@code backend = nft} it removes filterrefs of
 * ours instead. Idempotent; {@code --dry-run} prints what would change.
 */
@Command(
    name = "sync",
    mixinStandardHelpOptions = true,
    description = "Write each NIC's uncloud-* <filterref> from the domain metadata (backend = nwfilter) into"
        + " the persistent definition and, if the domain runs, the live one. Idempotent. With backend = nft,"
        + " removes uncloud-* filterrefs instead.")
final class SyncCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @ArgGroup(multiplicity = "1")
  Target target;

  static final class Target {
    @Parameters(paramLabel = "DOMAIN", arity = "1..*", description = "domain names or UUIDs")
    List<String> domains;

    @Option(names = "--all", required = true, description = "every defined or running domain")
    boolean all;
  }

  @Option(names = "--dry-run", description = "show the changes as a diff, change nothing")
  boolean dryRun;

  @Option(names = "--connect", paramLabel = "URI", description = "libvirt URI (default: ${DEFAULT-VALUE})")
  String uri = "qemu:///system";

  @Option(names = "--json", description = "JSON output")
  boolean json;

  /** {@code --json}: the whole run. */
  record Report(String backend, boolean dryRun, List<DomainReport> domains) {}

  /** One domain: {@code changed} is false on a dry run or when it was in sync. */
  record DomainReport(String name, String uuid, boolean active, boolean changed, List<Item> changes) {}

  /** One NIC of one definition ({@code where}: config or live); {@code diff} as -/+/space lines. */
  record Item(String where, String nic, String mac, String action, String filter, String difference,
      List<String> diff) {}

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Config config = ConfigFile.load(System.getenv());
    int exit = ExitCodes.OK;
    List<DomainReport> report = new ArrayList<>();
    try (LibvirtSession s = LibvirtSession.open(uri)) {
      List<String> names = new ArrayList<>();
      if (target.all) {
        for (LibvirtSession.DomainXml d : s.domains(false)) {
          names.add(d.name());
        }
      } else {
        names.addAll(target.domains);
      }
      for (String name : names) {
        try {
          report.add(sync(s, name, config, out));
        } catch (UncloudException e) {
          err.println("uncloud-hook: " + e.getMessage());
          err.flush();
          if (exit == ExitCodes.OK) {
            exit = e.exitCode();
          }
        }
      }
    }
    if (json) {
      Json.print(out, new Report(config.backend(), dryRun, report));
    }
    out.flush();
    return exit;
  }

  private DomainReport sync(LibvirtSession s, String name, Config config, PrintWriter out) {
    LibvirtSession.DomainXml d = s.domain(name);
    // plan both first: invalid metadata in either changes nothing
    List<SyncPlan.Change> changes = new ArrayList<>();
    if (d.configXml() != null) {
      changes.addAll(SyncPlan.plan(d.configXml(), SyncPlan.Where.CONFIG, config));
    }
    if (d.active()) {
      changes.addAll(SyncPlan.plan(d.liveXml(), SyncPlan.Where.LIVE, config));
    }
    List<Item> items = new ArrayList<>();
    for (SyncPlan.Change c : changes) {
      if (!dryRun) {
        s.updateDevice(d.uuid(), c.interfaceAfter(),
            c.where() == SyncPlan.Where.CONFIG ? LibvirtSession.AFFECT_CONFIG : LibvirtSession.AFFECT_LIVE);
      }
      List<String> diff = SyncPlan.diff(c.interfaceBefore(), c.interfaceAfter());
      if (!json) {
        out.println(d.name() + " " + c.where().label() + " " + c.nic() + " " + c.mac() + ": "
            + (dryRun ? "would change: " : "changed: ") + c.difference());
        if (dryRun) {
          out.println("--- " + d.name() + " " + c.where().label() + " " + c.nic());
          out.println("+++ " + d.name() + " " + c.where().label() + " " + c.nic() + " (synced)");
          diff.forEach(out::println);
        }
      }
      items.add(new Item(c.where().label(), c.nic(), c.mac(),
          c.kind() == NwfilterBackend.Kind.REMOVE ? "remove" : "set", c.after() == null ? null : c.after().filter(),
          c.difference(), diff));
    }
    if (!json && changes.isEmpty()) {
      out.println(d.name() + ": in sync");
    }
    out.flush();
    return new DomainReport(d.name(), d.uuid(), d.active(), !changes.isEmpty() && !dryRun, items);
  }
}
