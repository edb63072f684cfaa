package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.nwfilter.FilterXml;
import ch.ungleich.uncloud.hook.nwfilter.Templates;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code uncloud-hook nwfilter install}: defines the bundled uncloud-* filters in libvirt, or redefines
 * those that differ (libvirt then re-instantiates them on every NIC that uses them). Idempotent: a second
 * run reports every filter unchanged and defines nothing.
 */
@Command(
    name = "install",
    mixinStandardHelpOptions = true,
    description = "Define or update the uncloud-* nwfilters in libvirt (idempotent). Prints one line per"
        + " filter: defined, updated or unchanged.")
final class NwfilterInstallCommand implements Runnable {
  @Spec CommandSpec spec;

  @Option(names = "--connect", paramLabel = "URI", description = "libvirt URI (default: ${DEFAULT-VALUE})")
  String uri = "qemu:///system";

  @Option(names = "--json", description = "JSON output")
  boolean json;

  /** {@code --json}: {@code {"filters": [{"name": …, "result": "defined|updated|unchanged"}, …]}}. */
  record Report(List<Result> filters) {}

  record Result(String name, String result) {}

  @Override
  public void run() {
    List<Result> results = new ArrayList<>();
    try (LibvirtSession s = LibvirtSession.open(uri)) {
      for (Templates.Template t : Templates.all()) {
        String existing = s.filterXml(t.name());
        String result;
        if (existing == null) {
          s.defineFilter(t.xml());
          result = "defined";
        } else if (FilterXml.same(t.xml(), existing)) {
          result = "unchanged";
        } else {
          s.defineFilter(t.withUuid(FilterXml.uuid(existing)));
          result = "updated";
        }
        results.add(new Result(t.name(), result));
      }
    }
    if (json) {
      Json.print(spec.commandLine().getOut(), new Report(results));
      return;
    }
    for (Result r : results) {
      spec.commandLine().getOut().println(r.result() + " " + r.name());
    }
    spec.commandLine().getOut().flush();
  }
}
