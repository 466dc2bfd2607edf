"""The wizard pages, in order: Project, Model, Data, Configure, Train, Chat."""
