# Shared by the reference scripts: where the data and results live, and one writer for results.
# Results are long tables (dataset, term, quantity, value) with values at 15 significant digits,
# which round-trip a double exactly enough for any tolerance the tests use.

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- normalizePath(dirname(script))
data_dir <- file.path(here, "data")
results_dir <- file.path(here, "results")

read_data <- function(name) read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)

results <- new.env()
results$rows <- list()

put <- function(dataset, term, quantity, value) {
  value <- as.numeric(value)
  text <- if (is.na(value) && !is.nan(value)) "NA" else sprintf("%.15g", value)
  results$rows[[length(results$rows) + 1]] <- data.frame(
    dataset = dataset, term = term, quantity = quantity, value = text, stringsAsFactors = FALSE
  )
}

put_row <- function(dataset, term, ...) {
  values <- list(...)
  for (quantity in names(values)) put(dataset, term, quantity, values[[quantity]])
}

write_results <- function(name) {
  out <- do.call(rbind, results$rows)
  path <- file.path(results_dir, paste0(name, ".csv"))
  write.csv(out, path, row.names = FALSE, quote = TRUE)
  cat(sprintf("wrote %s (%d values)\n", path, nrow(out)))
}
